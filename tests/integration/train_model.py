"""Train an iris classifier, log and register it in MLflow, and pack its model folder.

Run with the models environment's interpreter (it has MLflow and scikit-learn):

    python train_model.py TRACKING_URI MODEL_NAME KIND ARCHIVE

KIND: (with `+profile`, the run also logs a reference profile of the training data)
`logistic` (a good model; MLflow 3 stores it as model.skops), `pickle` (the same, stored
as model.pkl, which KServe's native sklearn runtime reads), `constant` (always answers class
0), `slow-<ms>` (the logistic model as a pyfunc that takes <ms> milliseconds longer per request),
`flaky` (a pyfunc that raises on every row with a petal length above 5, about a quarter of
the iris rows: a model that rejects part of its inputs), `refuse-all` (a pyfunc that raises on
every request), `load-raises` (a pyfunc whose loading raises: the model server never gets it
loaded) or `corrupt` (a scikit-learn model whose pickle is garbage: an artifact that cannot be
loaded). Prints one JSON line:
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
import numpy as np
from sklearn.datasets import load_iris
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression


class Wrapped(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
    """A fitted classifier behind a pyfunc that is slower, or refuses some inputs."""

    def __init__(self, model: LogisticRegression, delay: float, refuse_above: float | None) -> None:
        self.model, self.delay, self.refuse_above = model, delay, refuse_above

    def predict(self, context: object, model_input: object, params: object = None) -> object:
        import time

        rows = np.asarray(model_input, dtype=float).reshape(-1, 4)
        if self.refuse_above is not None and (rows[:, 2] > self.refuse_above).any():
            raise ValueError(f"petal length above {self.refuse_above}: input refused")
        time.sleep(self.delay)
        return self.model.predict(rows)


class LoadRaises(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
    """A model whose loading fails, as a missing dependency or a bad file would make it."""

    def load_context(self, context: object) -> None:
        raise RuntimeError("this model cannot be loaded (load_context raises on purpose)")

    def predict(self, context: object, model_input: object, params: object = None) -> object:
        raise AssertionError("never loaded")


REFUSE_ABOVE = {"flaky": 5.0, "refuse-all": -1.0}


def main(tracking_uri: str, name: str, kind: str, archive: str) -> None:
    mlflow.set_tracking_uri(tracking_uri)
    features, target = load_iris(return_X_y=True)
    if kind == "corrupt":
        corrupt(name, archive, features, target)
        return
    if kind == "load-raises":
        with mlflow.start_run() as run:
            info = mlflow.pyfunc.log_model(
                name="model", python_model=LoadRaises(), registered_model_name=name
            )
        pack(name, str(info.registered_model_version), run.info.run_id, archive)
        return
    if kind.startswith("slow-") or kind in REFUSE_ABOVE:
        fitted = LogisticRegression(max_iter=500).fit(features, target)
        delay = int(kind.removeprefix("slow-")) / 1000 if kind.startswith("slow-") else 0.0
        wrapped = Wrapped(fitted, delay, REFUSE_ABOVE.get(kind))
        with mlflow.start_run() as run:
            info = mlflow.pyfunc.log_model(
                name="model", python_model=wrapped, registered_model_name=name,
                input_example=features[:2],
            )  # fmt: skip
        pack(name, str(info.registered_model_version), run.info.run_id, archive)
        return
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
    pack(name, str(info.registered_model_version), run.info.run_id, archive)


def corrupt(name: str, archive: str, features: np.ndarray, target: np.ndarray) -> None:
    """Register a scikit-learn version (model.pkl, which KServe's sklearn runtime reads) whose
    pickle is garbage, through a run's artifacts."""
    model = LogisticRegression(max_iter=500).fit(features, target)
    with tempfile.TemporaryDirectory() as folder, mlflow.start_run() as run:
        local = Path(folder) / "model"
        mlflow.sklearn.save_model(model, local, serialization_format="cloudpickle")
        (local / "model.pkl").write_bytes(b"this is not a pickle")
        mlflow.log_artifacts(str(local), "model")
        version = mlflow.register_model(f"runs:/{run.info.run_id}/model", name).version
    pack(name, str(version), run.info.run_id, archive)


def pack(name: str, version: str, run_id: str, archive: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        local = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=f"models:/{name}/{version}", dst_path=folder
            )
        )
        with tarfile.open(archive, "w:gz") as packed:
            for path in sorted(local.iterdir()):
                packed.add(path, arcname=path.name)
    print(json.dumps({"version": version, "run_id": run_id, "archive": archive}))


def log_profile(tracking_uri: str, run_id: str) -> None:
    """The reference profile of the iris training data, as training code logs it (modelops's
    own function: the clone's operator/ is on PYTHONPATH, as the package in a trainer image)."""
    from modelops.profile import log_reference

    mlflow.set_tracking_uri(tracking_uri)
    iris = load_iris()
    log_reference(
        iris.data, run_id=run_id, feature_names=list(iris.feature_names), task="classification"
    )


if __name__ == "__main__":
    tracking, model, kind_and_options, output = sys.argv[1:5]
    kind, _, option = kind_and_options.partition("+")
    if option not in ("", "profile"):
        raise SystemExit(f"unknown option {option!r}: only +profile")
    printed = sys.stdout
    with tempfile.TemporaryFile("w+") as captured:
        sys.stdout = captured
        main(tracking, model, kind, output)
        sys.stdout = printed
        captured.seek(0)
        line = captured.read().strip().splitlines()[-1]
    if option == "profile":
        log_profile(tracking, json.loads(line)["run_id"])
    print(line)
