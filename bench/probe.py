"""Single requests to a server: waiting for its first correct prediction, checking answers."""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

import numpy as np

from bench.models import BenchModel
from bench.peers import Server
from bench.processes import Started

# Peers compute in float64 from the pickled estimator; mlstack may run an ONNX export in
# float32 (the training round keeps an export only within 1e-5 of scikit-learn).
TOLERANCE = 1e-4
_POLL_SECONDS = 0.02


class WrongAnswer(RuntimeError):
    """A server answered a prediction with a non-2xx status or wrong probabilities."""


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes


def post(url: str, body: bytes, timeout: float = 10.0) -> Answer:
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return Answer(int(response.status), response.read())
    except urllib.error.HTTPError as exc:
        return Answer(int(exc.code), exc.read())


def check(server: Server, model: BenchModel, url: str, rows: np.ndarray) -> None:
    """POST `rows` once; raise WrongAnswer unless the answer is 2xx with the right
    probabilities for every row."""
    answer = post(url, server.body(model, rows))
    _verify(server, model, rows, answer)


def first_prediction(
    server: Server, model: BenchModel, url: str, process: Started, timeout: float
) -> float:
    """Seconds from the process's spawn to its first correct prediction.

    Polls every 20 ms. Raises WrongAnswer for a 2xx with wrong content, RuntimeError when
    the process exits, TimeoutError after `timeout` seconds.
    """
    rows = model.rows(1)
    body = server.body(model, rows)
    last = "no answer yet"
    while True:
        elapsed = time.monotonic() - process.started_at
        if elapsed > timeout:
            raise TimeoutError(
                f"{server.name} ({model.name}): no correct prediction after {timeout:g} s "
                f"({last}):\n{process.log_tail()}"
            )
        if not process.alive():
            raise RuntimeError(
                f"{server.name} ({model.name}) exited with {process.proc.returncode} before "
                f"answering:\n{process.log_tail()}"
            )
        try:
            answer = post(url, body, timeout=5.0)
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            last = str(getattr(exc, "reason", exc))
        else:
            if 200 <= answer.status < 300:
                done = time.monotonic() - process.started_at
                _verify(server, model, rows, answer)
                return done
            last = f"HTTP {answer.status}: {answer.body[:200]!r}"
        time.sleep(_POLL_SECONDS)


def _verify(server: Server, model: BenchModel, rows: np.ndarray, answer: Answer) -> None:
    where = f"{server.name} ({model.name}, {len(rows)} rows)"
    if not 200 <= answer.status < 300:
        raise WrongAnswer(f"{where}: HTTP {answer.status}: {answer.body[:500]!r}")
    try:
        got = server.probabilities(model, json.loads(answer.body))
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise WrongAnswer(
            f"{where}: unreadable answer ({type(exc).__name__}: {exc}): {answer.body[:500]!r}"
        ) from exc
    want = model.expected(rows)
    if got.shape != want.shape:
        raise WrongAnswer(f"{where}: probabilities of shape {got.shape}, expected {want.shape}")
    worst = float(np.max(np.abs(got - want)))
    if worst > TOLERANCE:
        raise WrongAnswer(f"{where}: probabilities differ from scikit-learn's by {worst:.2e}")
