"""Where a finished round's TrainingResult goes: a JSON file, in the cluster the training
container's termination message (`/dev/termination-log`), which the control plane reads."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

from training.contract import TrainingResult


def write_result(result: TrainingResult, path: Path | None) -> None:
    """Write `result` as JSON to `path`; nothing when `path` is None.

    A regular file (or a path that does not exist yet) is replaced atomically: the JSON goes to
    a temporary file in the same folder, which is then renamed over it, so a reader sees the
    old content or the new, never half. A path that cannot be renamed over — a file that is a
    mount point of its own, as the kubelet's bind-mounted `/dev/termination-log` is, or a
    device or FIFO — is written in place. Raises OSError naming the path."""
    if path is None:
        return
    data = (result.to_json() + "\n").encode()
    if _in_place(path):
        with path.open("wb") as out:
            out.write(data)
        return
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, 0o644)  # mkstemp's 0600 would hide it from a reader of another uid
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def _in_place(path: Path) -> bool:
    """Whether `path` exists as something a rename must not replace."""
    try:
        own = path.stat()
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(own.st_mode):
        return True
    # A bind-mounted file lives on another device than the folder it is mounted into.
    return own.st_dev != path.parent.stat().st_dev


class _ResultFile(BaseSettings):
    """MLSTACK_RESULT_FILE alone, for code outside `python -m training` (log_classifier):
    the other MLSTACK_* variables of a user's image are none of its business."""

    model_config = SettingsConfigDict(env_prefix="MLSTACK_", extra="ignore")

    result_file: Path | None = None


def result_file_from_environment() -> Path | None:
    return _ResultFile().result_file
