"""Retrain a wine classifier for modelops and propose it only when it is at least as good.

modelops runs this in the retraining Job with MLFLOW_TRACKING_URI, MODEL_NAME, MODEL_VERSION
(the version serving now), MODELOPS_TRIGGER_ID, MODELOPS_TRIGGER (why), when the deployment
names one, MODELOPS_CANDIDATE_ALIAS and, when the monitor captures labelled production rows,
MODELOPS_PRODUCTION_DATA (their Parquet folder). It:

1. trains a model on scikit-learn's wine data set (shipped with scikit-learn: nothing is
   downloaded; TRAIN_SEGMENT=low-alcohol keeps the wines below the median alcohol only) plus
   the captured production rows, with the hyper-parameters from the environment (TRAIN_C,
   TRAIN_MAX_ITER), and logs the reference profile of what production looks like (the newest
   300 captured rows once there are 100, else the training rows) with
   modelops.profile.log_reference, so the monitor measures drift against it;
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


# The wine data's median alcohol: TRAIN_SEGMENT=low-alcohol trains on the wines below it only
# (the demo's first versions, which have never seen the other half).
MEDIAN_ALCOHOL = 13.05
# Captured rows that make the reference profile production's rather than the training data's,
# and how many of the newest ones describe production now.
PROFILE_FROM_PRODUCTION = 100
RECENT_PRODUCTION_ROWS = 300


def segment(features: np.ndarray, target: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    if name == "all":
        return features, target
    if name == "low-alcohol":
        keep = features[:, 0] < MEDIAN_ALCOHOL
        return features[keep], target[keep]
    raise SystemExit(f"train.py: TRAIN_SEGMENT {name!r} is neither 'all' nor 'low-alcohol'")


def split(rows: np.ndarray, labels: np.ndarray) -> list[np.ndarray]:
    """70/30, stratified when every class has two rows to split."""
    counts = np.unique(labels, return_counts=True)[1]
    stratify = labels if counts.min() >= 2 else None
    parts: list[np.ndarray] = train_test_split(
        rows, labels, test_size=0.3, random_state=7, stratify=stratify
    )
    return parts


def production_rows(names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The labelled rows the monitor captured for this deployment, oldest first (none when
    not set up)."""
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
    order = np.argsort(np.asarray(columns["time"], dtype=float), kind="stable")
    rows = np.column_stack([np.asarray(columns[n], dtype=float) for n in names])[order]
    return rows, np.asarray(columns["label"], dtype=float).astype(int)[order]


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
    features, target = segment(wine.data, wine.target, environment("TRAIN_SEGMENT", "all"))
    train_rows, test_rows, train_labels, test_labels = split(features, target)
    profile_rows = train_rows
    captured_rows, captured_labels = production_rows(names)
    if len(captured_rows):
        # Production looks like this now: learn from it, and hold some of it out, so the
        # serving version is compared on what it meets today.
        more_train, more_test, more_train_labels, more_test_labels = split(
            captured_rows, captured_labels
        )
        train_rows = np.vstack([train_rows, more_train])
        train_labels = np.concatenate([train_labels, more_train_labels])
        test_rows = np.vstack([test_rows, more_test])
        test_labels = np.concatenate([test_labels, more_test_labels])
        features = np.vstack([features, captured_rows])
        target = np.concatenate([target, captured_labels])
        if len(captured_rows) >= PROFILE_FROM_PRODUCTION:
            # The reference the monitor compares with is what production looks like now: its
            # newest rows (older ones may be from before a shift).
            profile_rows = captured_rows[-RECENT_PRODUCTION_ROWS:]
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
        log_profile(profile_rows, names)
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
