"""`make bench-training`: the default round on real-sized data, against a plain grid search.

For each size in `BENCH_TRAINING_ROWS` (default 10k, 100k and 1M rows x 20 features, 3
classes, synthetic and seeded), one Parquet file, then:
- **mlstack**: `python -m training --data FILE` with its defaults, against a real `mlflow
  server`, on every core;
- **plain**: the same families and grids through scikit-learn's `GridSearchCV(n_jobs=-1)`,
  one per family, on the same split, as a user would write it (no skip, no halving), stopped
  after `BENCH_TRAINING_PLAIN_TIMEOUT` seconds; a stopped search is scored by the best of the
  families it finished, and the table names the ones it did not.
Prints wall time, peak memory (the sum of the process tree's proportional set sizes, sampled
every 0.2 s: worker processes share the data they map, so it is counted once) and its ratio
to the float32 data size, the families run and skipped, and the winner's held-out f1_macro.

A measurement, never a test: nothing is asserted.
"""

from __future__ import annotations

import json
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from bench.processes import Started, free_port, supervised
from bench.settings import REPO_ROOT
from devsupport.processes import MLFLOW_SERVER_ENV, mlflow_server_command
from training.settings import DEFAULT_FAMILIES

FEATURES = 20
CLASSES = 3


class TrainingBenchSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BENCH_TRAINING_", extra="ignore", frozen=True)

    rows: str = Field("10000,100000,1000000", description="Dataset sizes, comma-separated.")
    plain_timeout: float = Field(1800.0, gt=0, description="Seconds before the plain search stops.")
    mlstack_timeout: float = Field(3600.0, gt=0, description="Seconds before a round stops.")
    plain: bool = Field(True, description="Also run the plain GridSearchCV beside each round.")


@dataclass(frozen=True)
class Measured:
    seconds: float
    peak_bytes: int
    finished: bool
    score: float | None
    families: str
    skipped: str


def _dataset(rows: int, directory: Path) -> tuple[Path, int]:
    from sklearn.datasets import make_classification

    x, y = make_classification(
        rows,
        FEATURES,
        n_informative=10,
        n_redundant=5,
        n_classes=CLASSES,
        class_sep=0.8,
        flip_y=0.02,
        random_state=0,
    )
    frame = pd.DataFrame(x.astype(np.float32), columns=[f"f{i:02d}" for i in range(FEATURES)])
    frame["label"] = np.array(["alpha", "beta", "gamma"])[y]
    path = directory / f"synthetic-{rows}.parquet"
    frame.to_parquet(path)
    return path, rows * FEATURES * 4


def _pss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _watch(started: Started, timeout: float) -> tuple[float, int, bool]:
    """Wait for `started` to end (stopping it after `timeout` s); its wall time, the peak of
    its tree's summed PSS, and whether it finished by itself."""
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.wait(0.2):
            peak = max(peak, sum(_pss(pid) for pid in started.tree()))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    deadline = started.started_at + timeout
    while started.alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    finished = not started.alive()
    seconds = time.monotonic() - started.started_at
    if not finished:
        started.stop()
    stop.set()
    sampler.join()
    return seconds, peak, finished and started.proc.returncode == 0


_PLAIN = """
import json, sys
import pandas as pd
from sklearn.metrics import f1_score
from sklearn.model_selection import GridSearchCV, StratifiedKFold, train_test_split
from training.candidates import build

path, families = sys.argv[1], sys.argv[2].split(",")
frame = pd.read_parquet(path)
x, y = frame.drop(columns="label").to_numpy(), frame["label"].to_numpy()
x_train, x_test, y_train, y_test = train_test_split(
    x, y, test_size=0.25, random_state=42, stratify=y
)
best = None
for family in families:
    candidate = build(family, 42)
    search = GridSearchCV(
        candidate.estimator, candidate.grid, scoring="f1_macro", n_jobs=-1,
        cv=StratifiedKFold(5, shuffle=True, random_state=42),
    ).fit(x_train, y_train)
    held_out = f1_score(y_test, search.best_estimator_.predict(x_test), average="macro")
    print(family, search.best_score_, held_out, flush=True)
    if best is None or search.best_score_ > best[1]:
        best = (family, search.best_score_, held_out)
print(json.dumps({"winner": best[0], "f1_macro": best[2]}), flush=True)
"""


def _plain(supervisor: object, path: Path, timeout: float) -> Measured:
    started = supervisor.start(  # type: ignore[attr-defined]
        f"plain-{path.stem}",
        [sys.executable, "-c", _PLAIN, str(path), ",".join(DEFAULT_FAMILIES)],
        core=None,
        cwd=REPO_ROOT,
        env={"PYTHONWARNINGS": "ignore"},
    )
    seconds, peak, finished = _watch(started, timeout)
    lines = started.log.read_text(errors="replace").splitlines()
    # One line per finished family: name, best cv score, its held-out score. A stopped search
    # still has a winner among the families it finished, scored the same way.
    done = [line.split() for line in lines if line and line.split()[0] in DEFAULT_FAMILIES]
    score = max(done, key=lambda fields: float(fields[1]))[2] if done else None
    unfinished = [f for f in DEFAULT_FAMILIES if f not in {fields[0] for fields in done}]
    return Measured(
        seconds,
        peak,
        finished,
        float(score) if score is not None else None,
        ",".join(fields[0] for fields in done),
        f"unfinished: {','.join(unfinished)}" if unfinished else "",
    )


def _mlstack(supervisor: object, uri: str, path: Path, timeout: float, rows: int) -> Measured:
    name = f"bench-training-{rows}"
    result = path.with_suffix(".result.json")
    started = supervisor.start(  # type: ignore[attr-defined]
        f"mlstack-{path.stem}",
        [
            *(sys.executable, "-m", "training", "--data", str(path), "--target", "label"),
            *("--model-name", name, "--experiment", name, "--result-file", str(result)),
        ],
        core=None,
        cwd=REPO_ROOT,
        env={"MLFLOW_TRACKING_URI": uri, "PYTHONWARNINGS": "ignore"},
    )
    seconds, peak, finished = _watch(started, timeout)
    output = started.log.read_text(errors="replace")
    ran = [
        line.split()[1]
        for line in output.splitlines()
        if line.startswith("[") and " cv " in line and len(line.split()) > 1
    ]
    skipped = [
        line.split()[1].rstrip(":") for line in output.splitlines() if line.startswith("skipped ")
    ]
    score = None
    if finished:
        from mlflow import MlflowClient

        run_id = json.loads(result.read_text())["run_id"]
        score = MlflowClient(uri).get_run(run_id).data.metrics.get("test_f1_macro")
    return Measured(seconds, peak, finished, score, ",".join(ran), ",".join(skipped))


def _row(label: str, rows: int, m: Measured, data_bytes: int) -> str:
    time_text = f"{m.seconds:8.1f} s" if m.finished else f">{m.seconds:7.0f} s (stopped)"
    score = f"{m.score:.4f}" if m.score is not None else "-"
    return (
        f"| {rows:>9,} | {label:<7} | {time_text} | {m.peak_bytes / 2**20:7.0f} MiB "
        f"| {m.peak_bytes / data_bytes:5.1f}x | {m.families or '-'} | {m.skipped or '-'} "
        f"| {score} |"
    )


def main() -> int:
    settings = TrainingBenchSettings()
    sizes = [int(r) for r in settings.rows.split(",") if r.strip()]
    work = Path(tempfile.mkdtemp(prefix="mlstack-bench-training-"))
    print(
        "| rows | search | wall time | peak memory (PSS) | x float32 data | families run "
        "| skipped | held-out f1_macro |"
    )
    print("| ---: | --- | ---: | ---: | ---: | --- | --- | ---: |", flush=True)
    with supervised(work / "logs") as supervisor:
        port = free_port()
        uri = f"http://127.0.0.1:{port}"
        supervisor.start(
            "mlflow-server", mlflow_server_command(work, port), core=None, env=MLFLOW_SERVER_ENV
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{uri}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        for rows in sizes:
            path, data_bytes = _dataset(rows, work)
            ours = _mlstack(supervisor, uri, path, settings.mlstack_timeout, rows)
            print(_row("mlstack", rows, ours, data_bytes), flush=True)
            if not settings.plain:
                continue
            plain = _plain(supervisor, path, settings.plain_timeout)
            print(_row("plain", rows, plain, data_bytes), flush=True)
            ratio = plain.seconds / ours.seconds
            prefix = ">" if not plain.finished else ""
            print(f"|           | ratio   | plain / mlstack {prefix}{ratio:.1f}x |", flush=True)
    print(f"logs: {work / 'logs'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
