"""A user's own training script, as a team would write it: iris, a scikit-learn Pipeline on a
DataFrame with named columns, published with mlstack's `log_classifier` (logged, registered
and gated the way mlstack's round does). The chart gives it MLflow's address
(MLFLOW_TRACKING_URI), the model name and the result file in its environment.

    python train.py [--test-size 0.25] [--seed 7]
"""

from __future__ import annotations

import argparse
import os

import mlflow
import pandas as pd
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from training.publish import log_classifier

# The service's request fields: the names the champion was trained on.
COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--test-size", type=float, default=0.25)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    iris = load_iris()
    x = pd.DataFrame(iris.data, columns=COLUMNS)
    y = pd.Series([str(iris.target_names[i]) for i in iris.target], name="species")
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=args.test_size, stratify=y, random_state=args.seed
    )
    pipe = Pipeline([("scale", StandardScaler()), ("model", LogisticRegression(max_iter=500))])
    pipe.fit(x_train, y_train)

    mlflow.set_experiment(os.environ.get("MLSTACK_EXPERIMENT", "mlstack"))
    with mlflow.start_run(run_name="user-train"):
        mlflow.log_params({"test_size": args.test_size, "seed": args.seed})
        result = log_classifier(
            pipe, x_train, x_test, y_test, model_name=os.environ["MLSTACK_MODEL_NAME"]
        )
    print(f"registered {result.model_name} v{result.version}: {result.decision} ({result.reason})")


if __name__ == "__main__":
    main()
