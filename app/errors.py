"""Typed errors of the service and the one table that maps them to HTTP statuses."""

from __future__ import annotations


class ServiceError(Exception):
    """An error with a message safe to return to the client.

    `source` classifies it in the prediction log: validation, auth, limit or model.
    """

    status = 500
    source = "model"


class MalformedJson(ServiceError):
    status = 400
    source = "validation"


class Unauthorized(ServiceError):
    status = 401
    source = "auth"


class Forbidden(ServiceError):
    status = 403
    source = "auth"


class PayloadTooLarge(ServiceError):
    status = 413
    source = "limit"


class UnsupportedMediaType(ServiceError):
    status = 415
    source = "validation"


class InvalidInput(ServiceError):
    status = 422
    source = "validation"


class BatchTooLarge(InvalidInput):
    source = "limit"


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


class NoBaseline(ServiceError):
    """The served version has no baseline statistics, so no drift can be computed."""

    status = 409


class ModelLoadError(Exception):
    """A version could not be downloaded or loaded (never shown to clients)."""


class ModelRefused(ModelLoadError):
    """A version loaded but failed a check (signature, smoke prediction): never retried."""
