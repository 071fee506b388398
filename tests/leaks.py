"""The secrets the tests hand to the services they start, and the check that none of them is in
what those services wrote or exposed.

`tests/processes.py` registers every inference service and control plane it starts: its log
file (stdout and stderr), the secrets in its environment (a key file's content at start, and
again at the check) and its `/metrics` just before it stops. Tests that write a key of their
own (a rotation) `remember` it. The last test of each suite (`test_no_api_key_in_any_log_or_
metrics`, moved to the end by `tests/conftest.py`) asserts that none was found.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import httpx

# Environment variables holding a secret, and those naming a file that holds one.
SECRET_VARIABLES = ("MLSTACK_API_KEY", "MLSTACK_CONTROL_API_KEY", "MLFLOW_TRACKING_PASSWORD")
SECRET_FILES = (
    "MLSTACK_API_KEY_FILE",
    "MLSTACK_CONTROL_API_KEY_FILE",
    "MLSTACK_PREDICTION_LOG_API_KEY_FILE",
)
# A shorter secret would match ordinary text: the tests must use searchable keys.
MIN_LENGTH = 8


@dataclass
class Ledger:
    logs: list[Path] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)
    secrets: set[str] = field(default_factory=set)
    key_files: set[Path] = field(default_factory=set)
    metrics: list[tuple[str, str]] = field(default_factory=list)  # (url, /metrics text)

    def remember(self, secret: str) -> None:
        secret = secret.strip()
        if len(secret) < MIN_LENGTH:
            raise ValueError(
                f"a test secret of {len(secret)} characters cannot be told apart from ordinary "
                f"log text: use at least {MIN_LENGTH}"
            )
        self.secrets.add(secret)

    def register(self, log: Path, url: str, env: dict[str, str]) -> None:
        """A started service: its log, its URL and the secrets in its environment."""
        self.logs.append(log)
        self.urls.append(url)
        for name in SECRET_VARIABLES:
            if env.get(name):
                self.remember(env[name])
        for name in SECRET_FILES:
            if env.get(name):
                path = Path(env[name])
                self.key_files.add(path)
                self._read(path)

    def scrape(self, url: str) -> None:
        """Keep `url`'s /metrics (called just before the process stops)."""
        try:
            response = httpx.get(f"{url}/metrics", timeout=5)
        except httpx.HTTPError:
            return
        self.metrics.append((url, response.text))

    def findings(self) -> list[str]:
        """Where a secret was found: one line per log line or /metrics page, the secret masked."""
        for path in self.key_files:
            self._read(path)
        found = []
        for log in self.logs:
            text = log.read_text(errors="replace") if log.exists() else ""
            for number, line in enumerate(text.splitlines(), 1):
                for secret in self.secrets:
                    if secret in line:
                        found.append(f"{log}:{number}: {_excerpt(line, secret)}")
        pages = [*self.metrics, *((url, _live_metrics(url)) for url in self.urls)]
        for url, page in pages:
            for secret in self.secrets:
                if secret in page:
                    found.append(f"{url}/metrics holds {_mask(secret, secret)}")
        return found

    def _read(self, path: Path) -> None:
        try:
            value = path.read_text().strip()
        except OSError:
            return  # a test removed it (a key file that became unreadable)
        if value:
            self.remember(value)


def _excerpt(line: str, secret: str) -> str:
    """The line around the secret's first occurrence, the secret masked."""
    at = line.index(secret)
    return _mask(line[max(0, at - 100) : at + len(secret) + 60], secret)


def _mask(text: str, secret: str) -> str:
    return text.replace(secret, f"{secret[:2]}…({len(secret)} characters)")


def _live_metrics(url: str) -> str:
    try:
        return httpx.get(f"{url}/metrics", timeout=5).text
    except httpx.HTTPError:
        return ""  # stopped: its last page was kept by scrape()


LEDGER = Ledger()


def assert_no_secret_leaked(ledger: Ledger) -> None:
    """The body of each suite's last test: skipped when the session started no service."""
    import pytest

    if not ledger.logs:
        pytest.skip("no inference service or control plane was started in this session")
    assert ledger.secrets, "services were started but none was given a key: nothing to look for"
    found = ledger.findings()
    assert not found, "secrets the tests used are in what the services wrote:\n" + "\n".join(found)
