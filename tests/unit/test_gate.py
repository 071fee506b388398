"""The quality gate's decisions, one row per situation."""

from __future__ import annotations

import pytest

from training import contract
from training.gate import ChampionScore, decide

CHAMPION, CHALLENGER = contract.ALIAS_CHAMPION, contract.ALIAS_CHALLENGER


@pytest.mark.parametrize(
    ("metric", "score", "champion", "margin", "floor", "force", "alias", "reason"),
    [
        ("f1_macro", 0.9, None, 0.0, 0.7, False, CHAMPION, "no champion yet"),
        ("f1_macro", 0.6, None, 0.0, 0.7, False, CHALLENGER, "below the floor"),
        ("f1_macro", 0.95, ChampionScore("3", 0.90), 0.01, 0.7, False, CHAMPION, "beats"),
        (
            "f1_macro",
            0.905,
            ChampionScore("3", 0.90),
            0.01,
            0.7,
            False,
            CHALLENGER,
            "does not beat champion v3",
        ),
        ("f1_macro", 0.90, ChampionScore("3", 0.90), 0.0, 0.7, False, CHALLENGER, "does not beat"),
        ("log_loss", 0.2, ChampionScore("1", 0.3), 0.05, 0.5, False, CHAMPION, "beats"),
        ("log_loss", 0.6, None, 0.0, 0.5, False, CHALLENGER, "above the floor"),
        (
            "f1_macro",
            0.99,
            ChampionScore("2", None, "signature differs"),
            0.0,
            0.7,
            False,
            CHALLENGER,
            "cannot be compared: signature differs",
        ),
        (
            "f1_macro",
            0.99,
            ChampionScore("2", None, "signature differs"),
            0.0,
            0.7,
            True,
            CHAMPION,
            "forced over champion v2",
        ),
        (
            "f1_macro",
            0.5,
            ChampionScore("2", None, "signature differs"),
            0.0,
            0.7,
            True,
            CHALLENGER,
            "below the floor",
        ),
    ],
)
def test_gate_decision(
    metric: str,
    score: float,
    champion: ChampionScore | None,
    margin: float,
    floor: float,
    force: bool,
    alias: str,
    reason: str,
) -> None:
    decision = decide(metric, score, champion, margin, floor, force)
    assert decision.alias == alias
    assert reason in decision.reason
