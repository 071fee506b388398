"""KServe's scikit-learn predictor: a `kserve.Model` that loads a joblib file, served by
`kserve.ModelServer`. Runs in the KServe peer's own environment, not the project's.

KServe's sklearn server image is exactly this shape (load the joblib file once, call the
estimator per request); it is not published on PyPI, so the benchmark carries this file.
Probabilities are returned, as every server in the benchmark returns them.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import joblib
import kserve
from kserve.utils.utils import get_predict_input, get_predict_response


class SKLearnModel(kserve.Model):
    def __init__(self, name: str, model_dir: str) -> None:
        super().__init__(name)
        self.model_dir = Path(model_dir)
        self._estimator: Any = None

    def load(self) -> bool:
        self._estimator = joblib.load(self.model_dir / "model.joblib")
        self.ready = True
        return self.ready

    def predict(self, payload: Any, headers: dict[str, str] | None = None) -> Any:
        instances = get_predict_input(payload)
        return get_predict_response(payload, self._estimator.predict_proba(instances), self.name)


def main() -> None:
    parser = argparse.ArgumentParser(parents=[kserve.model_server.parser])
    parser.add_argument("--model_dir", required=True, help="Directory holding model.joblib.")
    args, _ = parser.parse_known_args()
    model = SKLearnModel(args.model_name, args.model_dir)
    model.load()
    kserve.ModelServer().start([model])


if __name__ == "__main__":
    main()
