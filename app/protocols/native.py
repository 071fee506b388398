"""mlstack's own `POST /predict`: one record, `{"instances": [records]}`, or the compact
`{"columns": [...], "data": [[...]]}` (answered columnar)."""

from __future__ import annotations

from typing import Any

import numpy as np

from app.asgi import Response, json_response
from app.errors import ServiceError
from app.model_store import LoadedModel
from app.parsing import SPLIT, decode, require_json, to_rows
from app.pipeline import Prediction, Protocol, Request


class Native(Protocol[str]):
    name = "predict"

    def parse(self, request: Request) -> tuple[np.ndarray, str]:
        require_json(request.content_type)
        model = request.model
        return to_rows(decode(request.body), model.features, request.limits.max_batch_rows)

    def render(self, state: str, prediction: Prediction, model: LoadedModel) -> Response:
        classes = model.classes
        response: dict[str, Any] = {"model_name": model.ref.name, "model_version": model.version}
        if state == SPLIT:
            # Columnar in, columnar out: the compact batch form skips per-row objects.
            response["classes"] = classes
            response["labels"] = prediction.labels
            response["probabilities"] = prediction.proba
        else:
            # A dict comprehension builds these small dicts faster than dict(zip(...)).
            response["predictions"] = [
                {"label": label, "probabilities": {c: p for c, p in zip(classes, row)}}  # noqa: B905
                for label, row in zip(prediction.labels, prediction.proba.tolist())  # noqa: B905
            ]
        return json_response(200, response)

    def refuse(self, exc: ServiceError) -> Response:
        return json_response(exc.status, {"detail": str(exc)})

    def example(self, model: LoadedModel, rows: np.ndarray) -> Any:
        return {"columns": list(model.features), "data": rows.tolist()}
