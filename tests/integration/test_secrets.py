"""The API keys (and MLflow passwords) this suite gave the services it started never appear in
their logs or their /metrics. Runs after every other test of the session (tests/leaks.py)."""

from __future__ import annotations

import pytest

from tests.leaks import Ledger, assert_no_secret_leaked


@pytest.mark.after_all
def test_no_api_key_in_any_log_or_metrics(ledger: Ledger) -> None:
    assert_no_secret_leaked(ledger)
