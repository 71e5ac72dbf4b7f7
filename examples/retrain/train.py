"""Retrain a wine classifier for modelops and propose it only when it is at least as good.

modelops runs this in the retraining Job with MLFLOW_TRACKING_URI, MODEL_NAME, MODEL_VERSION
(the version serving now), MODELOPS_TRIGGER_ID, MODELOPS_TRIGGER (why), when the deployment
names one, MODELOPS_CANDIDATE_ALIAS and, when the monitor captures labelled production rows,
MODELOPS_PRODUCTION_DATA (their Parquet folder). It:

1. trains a model on scikit-learn's wine data set (shipped with scikit-learn: nothing is
   downloaded) plus the captured production rows, with the hyper-parameters from the
   environment (TRAIN_C, TRAIN_MAX_ITER), and logs the reference profile of what it trained on
   (modelops.profile.log_reference), so the monitor measures drift against it;
2. logs parameters and held-out accuracy to MLflow;
3. validates it against the serving version on the same held-out rows;
4. registers it as a new version of MODEL_NAME with the trigger id and the data version on
   its run, and, if it is not worse, points MODELOPS_CANDIDATE_ALIAS at it. A worse model is
   registered, tagged modelops.io/validation=worse, and not proposed.

Exit code 0 when a version was registered (proposed or not), 1 on errors.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys

import mlflow
import numpy as np
from mlflow import MlflowClient
from sklearn.datasets import load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

TRIGGER_ID_TAG = "modelops.io/trigger-id"
DATA_VERSION_TAG = "modelops.io/data-version"
VALIDATION_TAG = "modelops.io/validation"


def environment(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, default)
    if value is None:
        raise SystemExit(f"train.py: set {name} (modelops sets it in the retraining Job)")
    return value


def data_version(features: np.ndarray, target: np.ndarray) -> str:
    """A fingerprint of the training data, recorded on the run."""
    digest = hashlib.sha256(features.tobytes() + target.tobytes()).hexdigest()[:12]
    return f"sklearn-wine-{digest}"


def production_rows(names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The labelled rows the monitor captured for this deployment (none when not set up)."""
    location = os.environ.get("MODELOPS_PRODUCTION_DATA")
    empty = np.empty((0, len(names))), np.empty((0,), dtype=int)
    if not location:
        return empty
    import pyarrow.dataset

    try:
        table = pyarrow.dataset.dataset(location, format="parquet").to_table()
    except (FileNotFoundError, OSError) as error:
        print(f"train.py: no captured rows at {location} ({error})", file=sys.stderr)
        return empty
    columns = table.to_pydict()
    if table.num_rows == 0 or not set(names) <= set(columns):
        return empty
    rows = np.column_stack([np.asarray(columns[n], dtype=float) for n in names])
    return rows, np.asarray(columns["label"], dtype=float).astype(int)


def log_profile(rows: np.ndarray, names: list[str]) -> None:
    """The reference profile of the training rows, beside the model in the active run."""
    try:
        from modelops.profile import log_reference
    except ImportError:
        print("train.py: modelops[monitor] is not installed: no reference profile", file=sys.stderr)
        return
    log_reference(rows, feature_names=names, task="classification")


def serving_accuracy(name: str, version: str, rows: np.ndarray, labels: np.ndarray) -> float | None:
    """Accuracy of the version serving now on the same held-out rows, if there is one."""
    if not version:
        return None
    model = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
    predicted = np.asarray(model.predict(rows)).reshape(-1)
    return float((predicted.astype(int) == labels).mean())


def main() -> int:
    mlflow.set_tracking_uri(environment("MLFLOW_TRACKING_URI"))
    name = environment("MODEL_NAME")
    serving = environment("MODEL_VERSION", "")
    trigger_id = environment("MODELOPS_TRIGGER_ID", "manual")
    alias = os.environ.get("MODELOPS_CANDIDATE_ALIAS") or None
    wine = load_wine()
    names = list(wine.feature_names)
    features, target = wine.data, wine.target
    train_rows, test_rows, train_labels, test_labels = train_test_split(
        features, target, test_size=0.3, random_state=7, stratify=target
    )
    captured_rows, captured_labels = production_rows(names)
    if len(captured_rows):
        # Production looks like this now: learn from it too (held-out rows stay the same).
        train_rows = np.vstack([train_rows, captured_rows])
        train_labels = np.concatenate([train_labels, captured_labels])
        features = np.vstack([features, captured_rows])
        target = np.concatenate([target, captured_labels])
    params = {
        "C": float(environment("TRAIN_C", "1.0")),
        "max_iter": int(environment("TRAIN_MAX_ITER", "500")),
    }
    model = make_pipeline(StandardScaler(), LogisticRegression(**params))
    model.fit(train_rows, train_labels)
    accuracy = float(model.score(test_rows, test_labels))
    baseline = serving_accuracy(name, serving, test_rows, test_labels)
    better = baseline is None or accuracy >= baseline
    with mlflow.start_run(run_name=f"retrain-{trigger_id}") as run:
        mlflow.log_params(params)
        mlflow.log_metric("accuracy", accuracy)
        if baseline is not None:
            mlflow.log_metric("serving_accuracy", baseline)
        log_profile(train_rows, names)
        mlflow.set_tags(
            {
                "modelops.io/production-rows": str(len(captured_rows)),
                TRIGGER_ID_TAG: trigger_id,
                DATA_VERSION_TAG: data_version(features, target),
                "modelops.io/trigger": os.environ.get("MODELOPS_TRIGGER", ""),
                VALIDATION_TAG: "passed" if better else "worse",
            }
        )
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            registered_model_name=name,
            input_example=test_rows[:2],
            serialization_format="cloudpickle",
        )
    version = str(info.registered_model_version)
    client = MlflowClient()
    client.set_model_version_tag(name, version, TRIGGER_ID_TAG, trigger_id)
    client.set_model_version_tag(name, version, VALIDATION_TAG, "passed" if better else "worse")
    if better and alias:
        client.set_registered_model_alias(name, alias, version)
    print(
        json.dumps(
            {
                "version": version,
                "run_id": run.info.run_id,
                "accuracy": accuracy,
                "serving_accuracy": baseline,
                "proposed": better,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
