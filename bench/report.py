"""Tables, ratios against the peers, the targets, the cost of the prediction log, mlstack's
protocol routes against their peers and against `/predict`, and the JSON record of a run."""

from __future__ import annotations

import dataclasses
import json
import operator
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.runner import ServerRun
from bench.settings import OWN, PROTOCOL_PEERS, SCENARIOS

MLSTACK = "mlstack"
MLSTACK_LOG = "mlstack-log"
MLSTACK_SHADOW = "mlstack-shadow"
MB = 1024 * 1024
_SINGLE_C16 = "single c=16"
_BATCH = next(s.name for s in SCENARIOS if s.rows > 1)
# A protocol route keeps at least this share of /predict's throughput, and of /predict's
# lead over the route's peer.
ROUTE_SHARE = 0.8


@dataclass(frozen=True)
class Target:
    """One target of the issue: mlstack against the best peer, as a ratio."""

    what: str
    model: str
    wanted: str  # e.g. ">= 4x"
    mlstack: float | None
    best_peer: str | None
    best_peer_value: float | None
    ratio: float | None  # mlstack / best peer
    passed: bool | None  # None: not measured (a server missing or failed)


def targets(runs: list[ServerRun]) -> list[Target]:
    """The issue's targets, for every model that was run."""
    out: list[Target] = []
    for model in dict.fromkeys(run.model for run in runs):
        mine = [run for run in runs if run.model == model]
        floor = 4.0 if model == "logreg" else 30.0
        out += [
            _target(f"{_SINGLE_C16} req/s", model, mine, _single_rps, max, floor, operator.ge),
            _target(f"{_SINGLE_C16} p99", model, mine, _single_p99, min, 0.25, operator.le),
            _target(f"{_BATCH} rows/s", model, mine, _batch_rows, max, 3.0, operator.ge),
            _target("cold start", model, mine, _cold, min, 0.5, operator.le),
            _target("peak RSS", model, mine, _rss, min, 1.0, operator.le),
        ]
    return out


@dataclass(frozen=True)
class ProtocolTarget:
    """One target of a protocol route (`route` names its server, e.g. mlstack-v1).

    Against /predict: `value` is the route's throughput, `reference` /predict's, wanted
    value ≥ 0.8 * reference. Lead over the peer: `value` is route ÷ peer, `reference`
    /predict ÷ peer, wanted (value - 1) ≥ 0.8 * (reference - 1): the route keeps at least
    80% of /predict's lead over that peer."""

    what: str
    model: str
    route: str
    peer: str
    lead: bool  # the lead over the peer (ratios), else against /predict (throughputs)
    wanted: str
    value: float | None
    reference: float | None
    passed: bool | None  # None: not measured (a server missing or failed)


def protocol_targets(runs: list[ServerRun]) -> list[ProtocolTarget]:
    """The protocol routes' targets, for every model and route that was run."""
    out: list[ProtocolTarget] = []
    figures = ((f"{_SINGLE_C16} req/s", _single_rps), (f"{_BATCH} rows/s", _batch_rows))
    for model in dict.fromkeys(run.model for run in runs):
        mine = [run for run in runs if run.model == model]
        predict = _measured(mine, MLSTACK)
        for route, peer in PROTOCOL_PEERS.items():
            if not any(run.server == route for run in mine):
                continue
            served, theirs = _measured(mine, route), _measured(mine, peer)
            for figure, value in figures:
                r, p, q = _value(served, value), _value(theirs, value), _value(predict, value)
                share = None if r is None or not q else r >= ROUTE_SHARE * q
                what, wanted = f"{figure} vs /predict", f"≥ {ROUTE_SHARE:g}x /predict"
                out.append(ProtocolTarget(what, model, route, peer, False, wanted, r, q, share))
                lead = lead_ref = kept = None
                if r is not None and q is not None and p:
                    lead, lead_ref = r / p, q / p
                    kept = lead - 1 >= ROUTE_SHARE * (lead_ref - 1)
                what, wanted = f"{figure} lead over {peer}", f"≥ {ROUTE_SHARE:g}x /predict's lead"
                goal = ProtocolTarget(what, model, route, peer, True, wanted, lead, lead_ref, kept)
                out.append(goal)
    return out


def render(
    runs: list[ServerRun],
    goals: list[Target],
    header: list[str],
    protocol_goals: list[ProtocolTarget] | None = None,
) -> str:
    """The whole report as Markdown (readable as plain text too)."""
    lines = [*header, ""]
    for model in dict.fromkeys(run.model for run in runs):
        lines += [*_load_table(model, [run for run in runs if run.model == model]), ""]
    if any(run.server not in PROTOCOL_PEERS for run in runs):
        lines += [*_start_table(runs), ""]
    logging = _log_table(runs)
    if logging:
        lines += [*logging, ""]
    shadowing = _shadow_table(runs)
    if shadowing:
        lines += [*shadowing, ""]
    protocols = _protocol_table(runs)
    if protocols:
        lines += [*protocols, ""]
    lines += _targets_table(goals)
    if protocol_goals:
        lines += ["", *_protocol_targets_table(protocol_goals)]
    failed = [run for run in runs if run.error]
    if failed:
        lines += ["", "Failures:"]
        lines += [f"- {run.server} / {run.model}: {(run.error or '')[:300]}" for run in failed]
    return "\n".join(lines) + "\n"


def write_json(
    path: Path,
    runs: list[ServerRun],
    goals: list[Target],
    meta: dict[str, Any],
    protocol_goals: list[ProtocolTarget] | None = None,
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        **meta,
        "runs": [dataclasses.asdict(run) for run in runs],
        "targets": [dataclasses.asdict(goal) for goal in goals],
        "protocol_targets": [dataclasses.asdict(goal) for goal in protocol_goals or []],
    }
    path.write_text(json.dumps(record, indent=2) + "\n")


def _load_table(model: str, runs: list[ServerRun]) -> list[str]:
    mlstack = next((run for run in runs if run.server == MLSTACK and not run.error), None)
    lines = [
        f"### {model}: requests/s for single rows, rows/s for {_BATCH}; medians",
        "",
        "| scenario | server | throughput | p50 ms | p99 ms | non-2xx | server CPU µs/req | "
        "mlstack ÷ server: throughput | p99 |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for scenario in SCENARIOS:
        for run in runs:
            result = run.scenarios.get(scenario.name)
            if result is None:
                lines.append(f"| {scenario.name} | {run.label} | failed | | | | | | |")
                continue
            rate = result.requests_per_second if scenario.rows == 1 else result.rows_per_second
            errors = result.non_2xx + result.socket_errors
            ratio_rate = ratio_p99 = ""
            mine = mlstack.scenarios.get(scenario.name) if mlstack else None
            if mine is not None and run.server != MLSTACK:
                my_rate = mine.requests_per_second if scenario.rows == 1 else mine.rows_per_second
                ratio_rate = _times(my_rate, rate)
                ratio_p99 = _times(mine.p99_ms, result.p99_ms)
            cpu = _num(result.server_cpu_us_per_request, ".0f")
            lines.append(
                f"| {scenario.name} | {run.label} | {rate:,.0f} | {result.p50_ms:.2f} | "
                f"{result.p99_ms:.2f} | {errors} | {cpu} | {ratio_rate} | {ratio_p99} |"
            )
    return lines


def _start_table(runs: list[ServerRun]) -> list[str]:
    lines = [
        "### Cold start (process start to first correct prediction, model on disk) and "
        "peak RSS (sum of VmHWM over the process tree, after the load)",
        "",
        "| model | server | cold start s (median) | all starts s | peak RSS MB | "
        "mlstack ÷ server: cold start | RSS |",
        "|---|---|---:|---|---:|---:|---:|",
    ]
    for model in dict.fromkeys(run.model for run in runs):
        mine = next((r for r in runs if r.model == model and r.server == MLSTACK), None)
        # The protocol routes are mlstack's own process: no starts of their own.
        for run in (r for r in runs if r.model == model and r.server not in PROTOCOL_PEERS):
            cold, rss = _cold(run), _rss(run)
            ratios = ["", ""]
            if mine is not None and run.server != MLSTACK:
                ratios = [_times(_cold(mine), cold), _times(_rss(mine), rss)]
            starts = ", ".join(f"{s:.2f}" for s in run.cold_start_seconds) or "-"
            lines.append(
                f"| {model} | {run.label} | {_num(cold, '.2f')} | {starts} | "
                f"{_num(rss, '.0f')} | {ratios[0]} | {ratios[1]} |"
            )
    return lines


def _pairs(runs: list[ServerRun], on_server: str) -> list[tuple[ServerRun, ServerRun]]:
    """(mlstack, `on_server`) runs of the same model."""
    return [
        (off, on)
        for off in runs
        for on in runs
        if off.server == MLSTACK and on.server == on_server and off.model == on.model
    ]


def _on_off_rows(pairs: list[tuple[ServerRun, ServerRun]], title: str) -> list[str]:
    """The on ÷ off table of each pair, per scenario: throughput, p50, p99, server CPU."""
    lines = [
        title,
        "",
        "| model | scenario | throughput off | on | on ÷ off | p50 ms off | on | on ÷ off | "
        "p99 ms off | on | on ÷ off | server CPU µs/req off | on | on ÷ off |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for off, on in pairs:
        for scenario in SCENARIOS:
            a, b = off.scenarios.get(scenario.name), on.scenarios.get(scenario.name)
            if a is None or b is None:
                lines.append(f"| {off.model} | {scenario.name} | failed | | | | | | | | | | | |")
                continue
            batch = scenario.rows > 1
            rate_off = a.rows_per_second if batch else a.requests_per_second
            rate_on = b.rows_per_second if batch else b.requests_per_second
            cpu_off, cpu_on = a.server_cpu_us_per_request, b.server_cpu_us_per_request
            lines.append(
                f"| {off.model} | {scenario.name} | {rate_off:,.0f} | {rate_on:,.0f} | "
                f"{_times(rate_on, rate_off)} | {a.p50_ms:.2f} | {b.p50_ms:.2f} | "
                f"{_times(b.p50_ms, a.p50_ms)} | {a.p99_ms:.2f} | {b.p99_ms:.2f} | "
                f"{_times(b.p99_ms, a.p99_ms)} | {_num(cpu_off, '.0f')} | {_num(cpu_on, '.0f')} | "
                f"{_times(cpu_on, cpu_off)} |"
            )
    lines.append("")
    return lines


def _log_table(runs: list[ServerRun]) -> list[str]:
    """mlstack-log ÷ mlstack per model and scenario, and where the records went; empty unless
    both ran."""
    pairs = _pairs(runs, MLSTACK_LOG)
    if not pairs:
        return []
    lines = _on_off_rows(
        pairs,
        "### Prediction log on ÷ off (mlstack-log ÷ mlstack): throughput below 1 and latency "
        "above 1 are what shipping every request's record costs; server CPU µs/req above 1 is "
        "what it costs the inference process itself",
    )
    for _, on in pairs:
        log = on.prediction_log
        if log is None:
            lines.append(f"- {on.model}: the records were not counted (the run failed)")
            continue
        lines.append(
            f"- {on.model}: {log.requests:,} /predict requests; {log.shipped:,} records shipped, "
            f"{log.dropped:,} dropped, {log.queued:,} still queued; {log.stored:,} stored by "
            f"the control plane, which used {log.control_cpu_seconds:.1f} CPU s of the load core "
            f"in {log.control_seconds:.0f} s"
        )
    return lines


def _shadow_table(runs: list[ServerRun]) -> list[str]:
    """mlstack-shadow ÷ mlstack per model and scenario, and what the shadow did; empty unless
    both ran."""
    pairs = _pairs(runs, MLSTACK_SHADOW)
    if not pairs:
        return []
    lines = _on_off_rows(
        pairs,
        "### Shadow at 100% on ÷ off (mlstack-shadow ÷ mlstack): every request predicted again "
        "by a challenger after its answer, in the same process; server CPU µs/req is the "
        "shadow's whole cost, p50 and p99 what the answers feel of it",
    )
    for _, on in pairs:
        f = on.shadow
        if not f:
            lines.append(f"- {on.model}: the shadow's figures were not read (the run failed)")
            continue
        agreement = f.get("agreement")
        lines.append(
            f"- {on.model}: v{f.get('shadow_version')} shadowed beside v{f.get('live_version')}: "
            f"{f.get('requests', 0):,} requests ({f.get('rows', 0):,} rows) predicted, "
            f"{f.get('dropped', 0):,} dropped (queue full), {f.get('errors', 0):,} errors; "
            f"agreement {'-' if agreement is None else f'{agreement:.4f}'}"
        )
    return lines


def _protocol_table(runs: list[ServerRun]) -> list[str]:
    """Each protocol route against the peer that defines its protocol and against mlstack's
    /predict, same model, same run; empty unless a protocol route ran."""
    routes = [run for run in runs if run.server in PROTOCOL_PEERS]
    if not routes:
        return []
    lines = [
        f"### Protocols: mlstack's protocol routes against the peer that defines each protocol "
        f"and against mlstack's /predict ({_SINGLE_C16} and {_BATCH}; ÷: route ÷ peer, "
        "route ÷ /predict; throughput above 1 and latency below 1 favour the route)",
        "",
        f"| model | route | peer | {_SINGLE_C16} req/s | ÷ peer | ÷ /predict | p50 ms | ÷ peer | "
        f"÷ /predict | p99 ms | ÷ peer | ÷ /predict | {_BATCH} rows/s | ÷ peer | ÷ /predict |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    figures = (
        (_single_rps, ",.0f"),
        (_single_p50, ".2f"),
        (_single_p99, ".2f"),
        (_batch_rows, ",.0f"),
    )
    for run in routes:
        mine = [r for r in runs if r.model == run.model]
        peer_name = PROTOCOL_PEERS[run.server]
        peer = next((r for r in mine if r.server == peer_name), None)
        predict = next((r for r in mine if r.server == MLSTACK), None)
        served = None if run.error else run
        cells = []
        for value, spec in figures:
            mine_value = _value(served, value)
            cells += [
                _num(mine_value, spec),
                _times(mine_value, _value(peer, value)),
                _times(mine_value, _value(predict, value)),
            ]
        peer_label = peer.label if peer is not None else f"{peer_name} (not run)"
        if peer is not None and peer.error:
            peer_label += " (failed)"
        label = f"{run.label} (failed)" if run.error else run.label
        lines.append(f"| {run.model} | {label} | {peer_label} | {' | '.join(cells)} |")
    return lines


def _protocol_targets_table(goals: list[ProtocolTarget]) -> list[str]:
    lines = [
        f"### Protocol targets: each route ≥ {ROUTE_SHARE:g}x /predict's throughput, and its "
        f"lead over its peer (route ÷ peer - 1) ≥ {ROUTE_SHARE:g}x /predict's lead "
        "(/predict ÷ peer - 1)",
        "",
        "| target | model | route | wanted | route | /predict | |",
        "|---|---|---|---|---:|---:|---|",
    ]
    for goal in goals:
        mark = {True: "PASS", False: "FAIL", None: "n/a"}[goal.passed]
        if goal.lead:
            shown = [_ratio(goal.value, f"÷ {goal.peer}"), _ratio(goal.reference, f"÷ {goal.peer}")]
        else:
            shown = [_num(goal.value, ",.0f"), _num(goal.reference, ",.0f")]
        lines.append(
            f"| {goal.what} | {goal.model} | {goal.route} | {goal.wanted} | {shown[0]} | "
            f"{shown[1]} | {mark} |"
        )
    return lines


def _targets_table(goals: list[Target]) -> list[str]:
    lines = [
        "### Targets (mlstack against the best peer in this run)",
        "",
        "| target | model | wanted | mlstack | best peer | ratio | |",
        "|---|---|---|---:|---|---:|---|",
    ]
    for goal in goals:
        mark = {True: "PASS", False: "FAIL", None: "n/a"}[goal.passed]
        peer = f"{goal.best_peer} {_num(goal.best_peer_value, ',.2f')}" if goal.best_peer else "-"
        ratio = f"{goal.ratio:.2f}x" if goal.ratio is not None else "-"
        lines.append(
            f"| {goal.what} | {goal.model} | {goal.wanted} | {_num(goal.mlstack, ',.2f')} | "
            f"{peer} | {ratio} | {mark} |"
        )
    return lines


def _target(
    what: str,
    model: str,
    runs: list[ServerRun],
    value: Callable[[ServerRun], float | None],
    best: Callable[[list[float]], float],
    bound: float,
    compare: Callable[[float, float], bool],
) -> Target:
    wanted = f"{'≥' if compare is operator.ge else '≤'} {bound:g}x best peer"
    mine = next((value(r) for r in runs if r.server == MLSTACK and not r.error), None)
    peers = {r.label: value(r) for r in runs if r.server not in OWN}
    measured = {label: v for label, v in peers.items() if v is not None}
    if mine is None or not measured or len(measured) < len(peers):
        return Target(what, model, wanted, mine, None, None, None, None)
    best_value = best(list(measured.values()))
    best_label = next(label for label, v in measured.items() if v == best_value)
    ratio = mine / best_value if best_value else None
    passed = None if ratio is None else compare(ratio, bound)
    return Target(what, model, wanted, mine, best_label, best_value, ratio, passed)


def _single_rps(run: ServerRun) -> float | None:
    result = run.scenarios.get(_SINGLE_C16)
    return None if result is None else result.requests_per_second


def _single_p50(run: ServerRun) -> float | None:
    result = run.scenarios.get(_SINGLE_C16)
    return None if result is None else result.p50_ms


def _single_p99(run: ServerRun) -> float | None:
    result = run.scenarios.get(_SINGLE_C16)
    return None if result is None else result.p99_ms


def _batch_rows(run: ServerRun) -> float | None:
    result = run.scenarios.get(_BATCH)
    return None if result is None else result.rows_per_second


def _cold(run: ServerRun) -> float | None:
    return statistics.median(run.cold_start_seconds) if run.cold_start_seconds else None


def _rss(run: ServerRun) -> float | None:
    return run.peak_rss_bytes / MB if run.peak_rss_bytes else None


def _measured(runs: list[ServerRun], server: str) -> ServerRun | None:
    """The run of `server`, unless it is missing or failed."""
    return next((r for r in runs if r.server == server and not r.error), None)


def _value(run: ServerRun | None, value: Callable[[ServerRun], float | None]) -> float | None:
    return None if run is None else value(run)


def _ratio(value: float | None, suffix: str) -> str:
    return "-" if value is None else f"{value:.2f}x {suffix}"


def _times(mine: float | None, theirs: float | None) -> str:
    if mine is None or not theirs:
        return "-"
    return f"{mine / theirs:.2f}x"


def _num(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)
