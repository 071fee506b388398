"""The quality gate: does this round's model take the `champion` alias?"""

from __future__ import annotations

from dataclasses import dataclass

from training import contract


@dataclass(frozen=True)
class ChampionScore:
    """The current champion as seen on this round's held-out data."""

    version: str
    score: float | None  # None: cannot be compared (see reason)
    reason: str = ""


@dataclass(frozen=True)
class Decision:
    alias: str  # contract.ALIAS_CHAMPION or contract.ALIAS_CHALLENGER
    reason: str

    @property
    def promoted(self) -> bool:
        return self.alias == contract.ALIAS_CHAMPION


def decide(
    metric: str,
    score: float,
    champion: ChampionScore | None,
    margin: float,
    floor: float,
    force: bool,
) -> Decision:
    """Champion only if the score clears `floor` and beats the champion by at least `margin`.

    "Beats" is strict: an equal score keeps the current champion. `force` promotes past an
    incomparable champion (different signature or classes) but never past the floor.
    """
    higher_better = contract.METRICS[metric].higher_is_better
    clears = score >= floor if higher_better else score <= floor
    if not clears:
        word = "below" if higher_better else "above"
        return Decision(
            contract.ALIAS_CHALLENGER,
            f"{metric} {score:.4f} is {word} the floor {floor:.4f}",
        )
    if champion is None:
        return Decision(
            contract.ALIAS_CHAMPION,
            f"no champion yet; {metric} {score:.4f} clears the floor {floor:.4f}",
        )
    if champion.score is None:
        if force:
            return Decision(
                contract.ALIAS_CHAMPION,
                f"forced over champion v{champion.version}: {champion.reason}",
            )
        return Decision(
            contract.ALIAS_CHALLENGER,
            f"champion v{champion.version} cannot be compared: {champion.reason}",
        )
    gain = score - champion.score if higher_better else champion.score - score
    if gain > 0 and gain >= margin:
        return Decision(
            contract.ALIAS_CHAMPION,
            f"{metric} {score:.4f} beats champion v{champion.version} "
            f"({champion.score:.4f}) by {gain:.4f} >= margin {margin:.4f}",
        )
    return Decision(
        contract.ALIAS_CHALLENGER,
        f"{metric} {score:.4f} does not beat champion v{champion.version} "
        f"({champion.score:.4f}) by the margin {margin:.4f} (gain {gain:+.4f})",
    )
