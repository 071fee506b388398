"""A directory laid out as the kubelet mounts a Secret, and its atomic update."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tests import leaks


class SecretMount:
    """`<root>/<key>` is a symlink to `..data/<key>`; `..data` is a symlink to the current
    `..<version>` directory. An update writes a new version directory, renames a new `..data`
    link over the old one (atomic) and removes the old directory, as the kubelet does."""

    def __init__(self, root: Path, key: str = "api-key") -> None:
        self.root = root
        self.key = key
        self._versions = 0
        root.mkdir(parents=True, exist_ok=True)

    @property
    def path(self) -> Path:
        """The file a service is pointed at."""
        return self.root / self.key

    def publish(self, *values: str) -> None:
        """Make `values`, one per line, the key's content (remembered for the leak check)."""
        for value in values:
            leaks.LEDGER.remember(value)
        self._versions += 1
        version = self.root / f"..2024_01_01_00_00_{self._versions:02d}.{os.getpid()}"
        version.mkdir()
        (version / self.key).write_text("".join(f"{value}\n" for value in values))
        old = self._data.resolve() if self._data.is_symlink() else None
        link = self.root / "..data_tmp"
        link.symlink_to(version.name)
        os.replace(link, self._data)
        if old is not None:
            shutil.rmtree(old)
        if not self.path.is_symlink():
            self.path.symlink_to(f"..data/{self.key}")

    def withdraw(self) -> None:
        """Remove `..data` and what it pointed at: the key's path dangles."""
        old = self._data.resolve()
        self._data.unlink()
        shutil.rmtree(old)

    @property
    def _data(self) -> Path:
        return self.root / "..data"
