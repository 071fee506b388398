"""mlstack's version, as installed (pyproject.toml's, the one place it is set)."""

from __future__ import annotations

from importlib import metadata


def version() -> str:
    try:
        return metadata.version("mlstack")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "0+unknown"
