"""Train an iris classifier, log and register it in MLflow, and pack its model folder.

Run with the models environment's interpreter (it has MLflow and scikit-learn):

    python train_model.py TRACKING_URI MODEL_NAME KIND ARCHIVE

KIND: `logistic` (a good model; MLflow 3 stores it as model.skops), `pickle` (the same, stored
as model.pkl, which KServe's native sklearn runtime reads) or `constant` (always answers class
0). Prints one JSON line:
{"version", "run_id", "archive"}. The archive is a .tar.gz of the registered version's files,
a storageUri KServe's storage initializer unpacks into real files (for a plain folder it makes
symlinks, which MLflow 3 refuses to load from).
"""

import json
import sys
import tarfile
import tempfile
from pathlib import Path

import mlflow
from sklearn.datasets import load_iris
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression


def main(tracking_uri: str, name: str, kind: str, archive: str) -> None:
    mlflow.set_tracking_uri(tracking_uri)
    features, target = load_iris(return_X_y=True)
    if kind in ("logistic", "pickle"):
        model = LogisticRegression(max_iter=500)
    else:
        model = DummyClassifier(strategy="constant", constant=0)
    model.fit(features, target)
    extra = {"serialization_format": "cloudpickle"} if kind == "pickle" else {}
    with mlflow.start_run() as run:
        info = mlflow.sklearn.log_model(
            model, name="model", registered_model_name=name, input_example=features[:2], **extra
        )
    version = str(info.registered_model_version)
    with tempfile.TemporaryDirectory() as folder:
        local = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=f"models:/{name}/{version}", dst_path=folder
            )
        )
        with tarfile.open(archive, "w:gz") as packed:
            for path in sorted(local.iterdir()):
                packed.add(path, arcname=path.name)
    print(json.dumps({"version": version, "run_id": run.info.run_id, "archive": archive}))


if __name__ == "__main__":
    main(*sys.argv[1:5])
