"""Per-user default locations, for local runs (the image and the chart set their own).

Never a fixed path under /tmp: any user of the machine can create that first, and a model
cache or a database another user planted would be read as this one's.
"""

from __future__ import annotations

import os
from pathlib import Path


def user_cache_dir(*parts: str) -> Path:
    """`$XDG_CACHE_HOME/mlstack/...`, else `~/.cache/mlstack/...`."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base, "mlstack", *parts)


def user_data_dir(*parts: str) -> Path:
    """`$XDG_DATA_HOME/mlstack/...`, else `~/.local/share/mlstack/...`."""
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base, "mlstack", *parts)
