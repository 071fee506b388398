"""The benchmark's settings: `BENCH_*` environment variables, with a quick smoke-run mode."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent

SERVERS: tuple[str, ...] = (
    "mlstack",
    "mlstack-log",
    "mlstack-shadow",
    "mlstack-v2",
    "mlstack-v1",
    "mlstack-invocations",
    "mlserver",
    "kserve",
    "mlflow",
)
# mlstack's protocol routes, each with the peer that defines its protocol.
PROTOCOL_PEERS: dict[str, str] = {
    "mlstack-v2": "mlserver",
    "mlstack-v1": "kserve",
    "mlstack-invocations": "mlflow",
}
# Servers built from this repository: no peer environment, never a peer in the targets.
OWN: tuple[str, ...] = ("mlstack", "mlstack-log", "mlstack-shadow", *PROTOCOL_PEERS)
MODELS: tuple[str, ...] = ("logreg", "random_forest")

# What BENCH_QUICK=1 changes, unless the variable itself is set.
_QUICK: dict[str, Any] = {
    "repeats": 1,
    "duration_seconds": 2.0,
    "warmup_seconds": 1.0,
    "cold_starts": 1,
}


@dataclass(frozen=True)
class Scenario:
    """One load shape: `rows` per request, `connections` kept busy by wrk."""

    name: str
    rows: int
    connections: int


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("single c=1", 1, 1),
    Scenario("single c=16", 1, 16),
    Scenario("single c=64", 1, 64),
    Scenario("batch64 c=8", 64, 8),
)


def _split(value: object) -> object:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


class BenchSettings(BaseSettings):
    """Every knob of `python -m bench`, read from `BENCH_<FIELD>`."""

    model_config = SettingsConfigDict(env_prefix="BENCH_", extra="ignore", frozen=True)

    quick: bool = Field(False, description="Smoke run: one short repetition of everything.")
    repeats: int = Field(3, ge=1, description="Measured wrk runs per scenario (medians kept).")
    duration_seconds: float = Field(10.0, gt=0, description="Length of each measured wrk run.")
    warmup_seconds: float = Field(3.0, ge=0, description="Unmeasured wrk run before a scenario.")
    cold_starts: int = Field(3, ge=1, description="Cold starts per server and model (median).")
    servers: Annotated[tuple[str, ...], NoDecode] = Field(
        SERVERS, description="Servers to run, comma-separated."
    )
    models: Annotated[tuple[str, ...], NoDecode] = Field(
        MODELS, description="Models to serve, comma-separated."
    )
    results_dir: Path = Field(BENCH_DIR / "results", description="Where JSON results go.")
    start_timeout_seconds: float = Field(180.0, gt=0, description="Bound on a server's start.")

    @model_validator(mode="before")
    @classmethod
    def _lists_and_quick(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in ("servers", "models"):
                if key in data:
                    data[key] = _split(data[key])
            if str(data.get("quick", "")).lower() in ("1", "true", "yes", "on"):
                for key, value in _QUICK.items():
                    data.setdefault(key, value)
        return data

    @model_validator(mode="after")
    def _known_names(self) -> Self:
        for key, known in (("servers", SERVERS), ("models", MODELS)):
            chosen = getattr(self, key)
            unknown = [name for name in chosen if name not in known]
            if unknown or not chosen:
                raise ValueError(f"BENCH_{key.upper()}: {unknown or 'empty'}; choose from {known}")
        return self
