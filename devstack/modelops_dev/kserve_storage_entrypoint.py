"""The `kserve/storage-initializer` image's entrypoint, run by the process kubelet with the
kserve-storage environment's interpreter (so it imports nothing from modelops).

    python kserve_storage_entrypoint.py SRC_URI DEST_DIR [SRC_URI DEST_DIR ...]

Like the image: every pair is downloaded by kserve-storage's Storage (s3://, gs://, https://,
file://, ...), and any failure exits 1 so the Pod's init container fails.
"""

import logging
import sys


def main(argv: list[str]) -> int:
    if not argv or len(argv) % 2:
        print("usage: kserve_storage_entrypoint.py SRC_URI DEST_DIR [...]", file=sys.stderr)
        return 1
    from kserve_storage import Storage  # type: ignore[import-not-found]

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    sources, destinations = argv[0::2], argv[1::2]
    try:
        Storage.download_files(sources, destinations)
    except Exception as error:
        logging.error("storage initialization failed: %s", error)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
