"""Register the demo's bad version of `wine`: a real classifier with a real bug, it refuses
every input whose alcohol content is above 12.5% (34% of the low-alcohol wines the demo sends).

    python bad_version.py   (MLFLOW_TRACKING_URI and MODEL_NAME from the environment)

Prints {"version": ...}. The demo moves the alias `champion` to it; the canary analysis sees
the model servers' failure counter climb and rolls it back.
"""

from __future__ import annotations

import json
import os
import sys

import mlflow
import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.datasets import load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

# A third of the low-alcohol wines the demo's traffic sends (examples/demo/traffic.py).
ALCOHOL_LIMIT = 12.5


class RefusingClassifier(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """A fitted pipeline behind a bug: inputs with high alcohol raise."""

    def __init__(self, limit: float = ALCOHOL_LIMIT) -> None:
        self.limit = limit

    def fit(self, features: np.ndarray, target: np.ndarray) -> RefusingClassifier:
        self.model_ = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
        self.model_.fit(features, target)
        self.classes_ = self.model_.classes_
        return self

    def predict(self, features: np.ndarray) -> np.ndarray:
        rows = np.asarray(features, dtype=float)
        if (rows[:, 0] > self.limit).any():
            raise ValueError(f"alcohol above {self.limit}: input refused")
        return np.asarray(self.model_.predict(rows))


def main() -> int:
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    name = os.environ.get("MODEL_NAME", "wine")
    features, target = load_wine(return_X_y=True)
    model = RefusingClassifier().fit(features, target)
    with mlflow.start_run(run_name="demo-bad-version"):
        mlflow.set_tag("modelops.io/demo", f"refuses alcohol > {ALCOHOL_LIMIT}")
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            registered_model_name=name,
            input_example=features[:2],
            serialization_format="cloudpickle",
        )
    print(json.dumps({"version": str(info.registered_model_version)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
