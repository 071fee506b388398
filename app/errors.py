"""Typed errors of the service; `app/main.py` and the protocol renderers map them to HTTP
statuses (each protocol in its own error form)."""

from __future__ import annotations

# The errors both services raise alike, re-exported: the service's code imports them from here.
from kernel.errors import Forbidden as Forbidden
from kernel.errors import InvalidInput as InvalidInput
from kernel.errors import KeyUnavailable as KeyUnavailable
from kernel.errors import MalformedJson as MalformedJson
from kernel.errors import PayloadTooLarge as PayloadTooLarge
from kernel.errors import ServiceError as ServiceError
from kernel.errors import Unauthorized as Unauthorized


class UnsupportedMediaType(ServiceError):
    status = 415
    source = "validation"


class BatchTooLarge(InvalidInput):
    source = "limit"


class OutOfRange(ServiceError):
    """A feature value outside the served version's training range, refused when
    MLSTACK_REFUSE_OUT_OF_RANGE is on: 422 in every protocol (not InvalidInput, which the
    V2, KServe V1 and MLflow protocols answer with 400)."""

    status = 422
    source = "validation"


class ModelNotFound(ServiceError):
    """A route names a model or version other than the one being served."""

    status = 404
    source = "validation"


class NotServed(ServiceError):
    """The request asks for an answer the served version cannot give through this protocol
    (e.g. /invocations for a version whose pyfunc predict_fn is neither predict nor
    predict_proba)."""

    status = 501
    source = "model"


class NotReady(ServiceError):
    status = 503
    source = "model"


class NoBaseline(ServiceError):
    """The served version has no baseline statistics, so no drift can be computed."""

    status = 409
    source = "model"


class ModelLoadError(Exception):
    """A version could not be downloaded or loaded (never shown to clients)."""


class ModelRefused(ModelLoadError):
    """A version loaded but failed a check (signature, smoke prediction): never retried."""
