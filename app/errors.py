"""Typed errors of the service and the one table that maps them to HTTP statuses."""

from __future__ import annotations


class ServiceError(Exception):
    """An error with a message safe to return to the client."""

    status = 500


class MalformedJson(ServiceError):
    status = 400


class Unauthorized(ServiceError):
    status = 401


class Forbidden(ServiceError):
    status = 403


class PayloadTooLarge(ServiceError):
    status = 413


class UnsupportedMediaType(ServiceError):
    status = 415


class InvalidInput(ServiceError):
    status = 422


class NotReady(ServiceError):
    status = 503


class ModelLoadError(Exception):
    """A version could not be downloaded or loaded (never shown to clients)."""


class ModelRefused(ModelLoadError):
    """A version loaded but failed a check (signature, smoke prediction): never retried."""
