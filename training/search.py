"""How a round searches: which families run on this data, on how many cores, with which search,
and the progress it prints while it does.

Small data gets an exhaustive grid search; from `halving_min_rows` training rows the search is
successive halving (every candidate on a small subset, the best third on three times as many
rows, and so on), so large data is not searched at full size for every candidate. Families
whose fit grows faster than the rows (the SVM) run only below `svm_max_rows`.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from training import contract
from training.candidates import Candidate

# The lines a round prints about its search (what `progress_line` recognises): the plan, a
# skipped family, a family started or finished ("[2/3] ..."), a running search's fits.
_PROGRESS = re.compile(r"^(search |skipped \S+: |\[\d+/\d+\] |\s+\S+\s+\d+/\d+ fits, )")

# Families whose fit time grows faster than linearly in the rows: skipped on large data.
QUADRATIC_FAMILIES: frozenset[str] = frozenset({"svm"})
HALVING_FACTOR = 3


@dataclass(frozen=True)
class Plan:
    """What a round will search: the families to run, in order, and the ones skipped with why."""

    families: tuple[str, ...]
    skipped: dict[str, str] = field(default_factory=dict)
    halving: bool = False
    cores: int = 1


def plan(
    families: tuple[str, ...],
    rows: int,
    *,
    svm_max_rows: int,
    halving_min_rows: int,
    cores: int,
) -> Plan:
    """The families to run on `rows` training rows; a quadratic family above `svm_max_rows`
    is skipped (unless it is the only one asked for: a round needs a candidate)."""
    skipped = {
        family: (
            f"{rows} training rows is over MLSTACK_SVM_MAX_ROWS={svm_max_rows}: its fit grows "
            "faster than the rows; raise the setting to run it anyway"
        )
        for family in families
        if family in QUADRATIC_FAMILIES and rows > svm_max_rows
    }
    run = tuple(f for f in families if f not in skipped)
    if not run:
        return Plan(families, {}, rows >= halving_min_rows, cores)
    return Plan(run, skipped, rows >= halving_min_rows, cores)


def halving_schedule(candidates: int, rows: int, folds: int, classes: int) -> list[tuple[int, int]]:
    """(candidates, rows) of each successive-halving iteration, as scikit-learn's
    `min_resources="exhaust"` runs them: the last iteration uses as many rows as it can."""
    smallest = 2 * folds * classes
    required = 1 + math.floor(math.log(candidates, HALVING_FACTOR)) if candidates > 1 else 1
    first = max(smallest, rows // HALVING_FACTOR ** (required - 1))
    possible = 1 + math.floor(math.log(max(rows // first, 1), HALVING_FACTOR))
    schedule = []
    for i in range(min(possible, required)):
        schedule.append((candidates, min(int(HALVING_FACTOR**i * first), rows)))
        candidates = math.ceil(candidates / HALVING_FACTOR)
    return schedule


def make_search(
    candidate: Candidate,
    *,
    scoring: Any,
    folds: int,
    seed: int,
    cores: int,
    halving: bool,
) -> Any:
    """The scikit-learn search for one family: a grid search, or a successive-halving one
    over the number of rows. Its candidates run on `cores` worker processes, each estimator
    single-threaded (joblib's workers cap OpenMP and BLAS threads at their share), so the
    two levels never oversubscribe the cores."""
    from sklearn.model_selection import GridSearchCV, StratifiedKFold

    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    if halves(candidate, halving):
        from sklearn.experimental import enable_halving_search_cv  # noqa: F401
        from sklearn.model_selection import HalvingGridSearchCV

        return HalvingGridSearchCV(
            candidate.estimator,
            candidate.grid,
            factor=HALVING_FACTOR,
            resource="n_samples",
            min_resources="exhaust",
            scoring=scoring,
            # Training scores would double the scoring work, and the progress count.
            return_train_score=False,
            cv=cv,
            refit=True,
            n_jobs=cores,
            random_state=seed,
            error_score="raise",
        )
    return GridSearchCV(
        candidate.estimator,
        candidate.grid,
        scoring=scoring,
        cv=cv,
        refit=True,
        n_jobs=cores,
        error_score="raise",
    )


def halves(candidate: Candidate, halving: bool) -> bool:
    """Whether `candidate` is searched by successive halving (a one-point grid never is)."""
    return halving and _points(candidate) > 1


def _points(candidate: Candidate) -> int:
    from sklearn.model_selection import ParameterGrid

    return len(ParameterGrid(candidate.grid))


def share(candidates: list[Candidate], shards: int, index: int) -> list[Candidate]:
    """Shard `index`'s share of every candidate point (each family's grid points, families in
    order, dealt round-robin over `shards`): the families it has points of, each with a grid of
    those points only."""
    from sklearn.model_selection import ParameterGrid

    mine: dict[str, list[dict[str, list[Any]]]] = {}
    position = 0
    for candidate in candidates:
        for point in ParameterGrid(candidate.grid):
            if position % shards == index:
                mine.setdefault(candidate.family, []).append({k: [v] for k, v in point.items()})
            position += 1
    return [replace(c, grid=mine[c.family]) for c in candidates if c.family in mine]


def planned_work(
    candidate: Candidate, rows: int, folds: int, classes: int, halving: bool
) -> tuple[int, float]:
    """(fits, row-weighted work) the search of `candidate` will do: what progress is measured
    against. The work of a fit counts its validation rows, which grow with its training rows."""
    points = _points(candidate)
    if halves(candidate, halving):
        schedule = halving_schedule(points, rows, folds, classes)
        fits = sum(n for n, _ in schedule) * folds
        work = sum(n * r for n, r in schedule)
        return fits, float(work)
    return points * folds, float(points * rows)


class CountingScorer:
    """A scorer that also appends the size of each validation fold it scores to a file.

    The search runs its fits in worker processes; a line appended to a file (O_APPEND, one
    short write) is how they report a finished fit to the round without a queue of its own."""

    def __init__(self, scorer: Any, path: Path) -> None:
        self.scorer = scorer
        self.path = path

    def __call__(self, estimator: Any, x: Any, y: Any) -> float:
        score = self.scorer(estimator, x, y)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, f"{len(y)}\n".encode())
        finally:
            os.close(fd)
        return score


class Progress:
    """Prints how far one family's search is, with its estimated time left, every `every`
    seconds from its first finished fit, until stopped."""

    def __init__(
        self,
        family: str,
        fits: int,
        work: float,
        say: Callable[[str], None],
        every: float,
    ) -> None:
        self.family = family
        self.fits = fits
        self.work = work
        self._say = say
        self._every = every
        self._directory = tempfile.TemporaryDirectory(prefix="mlstack-progress-")
        self.path = Path(self._directory.name) / "fits"
        self._stop = threading.Event()
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._run, name=f"progress-{family}", daemon=True)

    def __enter__(self) -> Progress:
        self._started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._directory.cleanup()

    def status(self) -> tuple[int, float | None]:
        """(fits finished, estimated seconds left or None before the first fit)."""
        try:
            sizes = [int(s) for s in self.path.read_text().split()]
        except (OSError, ValueError):
            return 0, None
        if not sizes:
            return 0, None
        # A fit's validation fold holds 1/folds of its rung's rows: the work planned counts
        # them alike.
        done = float(np.sum(sizes))
        elapsed = time.monotonic() - self._started
        left = max(self.work - done, 0.0) * elapsed / done if done else None
        return len(sizes), left

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            done, left = self.status()
            if left is None:
                continue
            self._say(
                f"      {self.family:<22} {done}/{self.fits} fits, about {_duration(left)} left"
            )


def progress_line(line: str) -> bool:
    """Whether `line` of a round's output reports its search's progress."""
    return _PROGRESS.match(line) is not None


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def scorer_for(metric: str) -> Any:
    from sklearn.metrics import get_scorer

    return get_scorer(contract.METRICS[metric].scorer)
