"""Retrain a wine classifier for modelops and propose it only when it is at least as good.

modelops runs this in the retraining Job with MLFLOW_TRACKING_URI, MODEL_NAME, MODEL_VERSION
(the version serving now), MODELOPS_TRIGGER_ID, MODELOPS_TRIGGER (why) and, when the
deployment names one, MODELOPS_CANDIDATE_ALIAS. It:

1. trains a model on scikit-learn's wine data set (shipped with scikit-learn: nothing is
   downloaded), with the hyper-parameters from the environment (TRAIN_C, TRAIN_MAX_ITER);
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
    features, target = load_wine(return_X_y=True)
    train_rows, test_rows, train_labels, test_labels = train_test_split(
        features, target, test_size=0.3, random_state=7, stratify=target
    )
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
        mlflow.set_tags(
            {
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
