"""The registry at a glance, promotion and rollback: MLflow client calls behind typed results.

The service's routes and the `mlstack` command call these same functions, so promotion
through either path makes the same checks. Every MLflow failure leaves as a ControlError:
NotFound for a missing model or version, RegistryUnavailable for the rest.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import structlog
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from control import metrics
from control.errors import Conflict, InvalidInput, NotFound, RegistryUnavailable
from control.render import epoch_to_iso
from control.schemas import (
    Adoption,
    Agreement,
    AliasChange,
    BestRun,
    ExperimentView,
    ModelDetail,
    ModelSummary,
    ModelVersionView,
)
from training import contract
from training.registry import alias_version, previous_tag, version_files
from training.registry import move_alias as _move_alias

log = structlog.get_logger("control.registry")

_MISSING = ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND")


@contextlib.contextmanager
def _mlflow(what: str) -> Iterator[None]:
    """Turn MLflow's exceptions into ours; `what` names the thing for a 404."""
    try:
        yield
    except MlflowException as exc:
        if exc.error_code in _MISSING:
            raise NotFound(f"{what} does not exist") from exc
        if exc.error_code == "INVALID_PARAMETER_VALUE":  # e.g. a reserved alias name
            raise InvalidInput(f"MLflow refused {what}: {exc.message}") from exc
        metrics.REGISTRY_ERRORS.inc()
        raise RegistryUnavailable(f"MLflow failed on {what}: {exc.message}") from exc
    except OSError as exc:  # requests' connection errors are OSErrors too
        metrics.REGISTRY_ERRORS.inc()
        raise RegistryUnavailable(f"MLflow is unreachable ({what}): {exc}") from exc


def _iso(millis: int | None) -> str | None:
    if not millis:
        return None
    return epoch_to_iso(millis / 1000)


def _quoted(name: str) -> str:
    if "'" in name or "\\" in name:
        raise InvalidInput(f"model name {name!r}: quotes and backslashes are not supported")
    return f"'{name}'"


def list_models(client: MlflowClient) -> list[ModelSummary]:
    """Every registered model, by name."""
    out: list[ModelSummary] = []
    token: str | None = None
    with _mlflow("the registered models"):
        while True:
            page = client.search_registered_models(order_by=["name ASC"], page_token=token)
            out.extend(
                ModelSummary(
                    name=m.name,
                    description=m.description or None,
                    created=_iso(m.creation_timestamp),
                    updated=_iso(m.last_updated_timestamp),
                    aliases={str(k): str(v) for k, v in (m.aliases or {}).items()},
                )
                for m in page
            )
            token = page.token
            if not token:
                return out


def model_detail(client: MlflowClient, name: str) -> ModelDetail:
    """One model with every version, newest first: aliases, gate metric and decision."""
    quoted = _quoted(name)
    with _mlflow(f"registered model {name!r}"):
        model = client.get_registered_model(name)
        versions: list[ModelVersion] = []
        token: str | None = None
        while True:
            page = client.search_model_versions(
                f"name = {quoted}", order_by=["version_number DESC"], page_token=token
            )
            versions.extend(page)
            token = page.token
            if not token:
                break
    aliases = {str(k): str(v) for k, v in (model.aliases or {}).items()}
    return ModelDetail(
        name=model.name,
        description=model.description or None,
        created=_iso(model.creation_timestamp),
        updated=_iso(model.last_updated_timestamp),
        aliases=aliases,
        versions=[_version_view(v, aliases) for v in versions],
    )


def _version_view(mv: ModelVersion, aliases: dict[str, str]) -> ModelVersionView:
    tags: dict[str, str] = dict(mv.tags or {})
    score = tags.get(contract.TAG_GATE_SCORE)
    onnx = tags.get(contract.TAG_ONNX)
    prefix = contract.TAG_PREVIOUS_HOLDER_PREFIX
    return ModelVersionView(
        version=str(mv.version),
        aliases=sorted(a for a, v in aliases.items() if v == str(mv.version)),
        status=str(mv.status),
        created=_iso(mv.creation_timestamp),
        run_id=mv.run_id or None,
        metric=tags.get(contract.TAG_GATE_METRIC),
        score=float(score) if score else None,
        decision=tags.get(contract.TAG_GATE_DECISION),
        reason=tags.get(contract.TAG_GATE_REASON),
        onnx=None if onnx is None else onnx == "true",
        previous={k.removeprefix(prefix): v for k, v in tags.items() if k.startswith(prefix)},
    )


def list_experiments(client: MlflowClient, metric: str) -> list[ExperimentView]:
    """Every active experiment with its best training round on the held-out `metric`."""
    if metric not in contract.METRICS:
        raise InvalidInput(f"metric: unknown {metric!r}; choose from {', '.join(contract.METRICS)}")
    higher_is_better = contract.METRICS[metric].higher_is_better
    column = f"{contract.TEST_METRIC_PREFIX}{metric}"
    order = f"metrics.`{column}` {'DESC' if higher_is_better else 'ASC'}"
    rounds = f"tags.`{contract.TAG_ROUND_ROLE}` = '{contract.ROLE_ROUND}'"
    out: list[ExperimentView] = []
    with _mlflow("the experiments"):
        experiments: list[Any] = []
        token: str | None = None
        while True:
            page = client.search_experiments(order_by=["name ASC"], page_token=token)
            experiments.extend(page)
            token = page.token
            if not token:
                break
        for experiment in experiments:
            runs = client.search_runs(
                [experiment.experiment_id], rounds, order_by=[order], max_results=1
            )
            best = None
            if runs and column in runs[0].data.metrics:
                run = runs[0]
                best = BestRun(
                    run_id=run.info.run_id,
                    run_name=run.info.run_name or None,
                    metric=metric,
                    value=float(run.data.metrics[column]),
                    candidate=run.data.tags.get(contract.TAG_CANDIDATE),
                    dataset=run.data.tags.get(contract.TAG_DATASET_NAME),
                    decision=run.data.tags.get(contract.TAG_GATE_DECISION),
                    started=_iso(run.info.start_time),
                )
            out.append(
                ExperimentView(
                    experiment_id=str(experiment.experiment_id),
                    name=experiment.name,
                    created=_iso(experiment.creation_time),
                    best_run=best,
                )
            )
    return out


def _features(client: MlflowClient, name: str, version: str) -> tuple[str, ...]:
    try:
        return version_files(client, name, version).features
    except (MlflowException, OSError, contract.ManifestError) as exc:
        raise Conflict(
            f"the signature of {name} v{version} cannot be read ({exc}); "
            "pass force to move the alias anyway"
        ) from exc


# (shadowed version, the version that answered) → their agreement in the prediction log.
AgreementSource = Callable[[str, str], Agreement]


@dataclasses.dataclass(frozen=True)
class AgreementBar:
    """`mlstack promote --min-agreement --min-rows`: what the live agreement must show."""

    min_agreement: float
    min_rows: int
    source: AgreementSource

    def check(self, name: str, alias: str, version: str, previous: str | None) -> Agreement:
        """The agreement that clears the bar; Conflict naming what is missing otherwise."""
        if previous is None:
            raise Conflict(
                f"{alias} of {name} points to no version: there is nothing v{version} could "
                "have been shadowed beside; promote without --min-agreement"
            )
        found = self.source(version, previous)
        if found.rows < self.min_rows:
            raise Conflict(
                f"v{version} has {found.rows} shadowed rows beside v{previous}, fewer than "
                f"--min-rows {self.min_rows}: let the shadow see more traffic "
                "(MLSTACK_SHADOW_PERCENT) or lower --min-rows"
            )
        assert found.agreement is not None  # rows > 0
        if found.agreement < self.min_agreement:
            raise Conflict(
                f"v{version} agreed with v{previous} on {found.agreement:.4f} of "
                f"{found.rows} shadowed rows, below --min-agreement {self.min_agreement}"
            )
        return found


def move_alias(
    client: MlflowClient,
    name: str,
    alias: str,
    version: str,
    force: bool,
    by: str,
    bar: AgreementBar | None = None,
) -> AliasChange:
    """Point `alias` of `name` at `version` and remember the previous holder on the version.

    Refused (Conflict) when the version's features differ from the current holder's, or a
    manifest cannot be read, unless `force`; and, with `bar`, when its live agreement with the
    current holder is short of it (`force` does not pass that). NotFound for a missing model or
    version. The alias moves last: a refusal or failure changes nothing.
    """
    _quoted(name)
    with _mlflow(f"version {version} of model {name!r}"):
        target = client.get_model_version(name, version)
    with _mlflow(f"registered model {name!r}"):
        current = alias_version(client, name, alias)
    previous = None if current is None else str(current.version)
    if bar is not None and previous != str(target.version):
        found = bar.check(name, alias, str(target.version), previous)
        log.info(
            "promote.agreement",
            model=name,
            version=version,
            previous=previous,
            agreement=found.agreement,
            rows=found.rows,
        )
    if previous == str(target.version):
        metrics.ALIAS_CHANGES.labels("promote", "unchanged").inc()
        return AliasChange(
            model=name,
            alias=alias,
            version=previous,
            previous=previous,
            changed=False,
            forced=force,
        )
    if not force:
        try:
            if target.status != "READY":
                raise Conflict(f"{name} v{version} is {target.status}, not READY")
            features = _features(client, name, version)
            if previous is not None:
                held = _features(client, name, previous)
                if held != features:
                    raise Conflict(
                        f"the signature of {name} v{version} differs from {alias} "
                        f"v{previous}'s: features {list(features)} vs {list(held)}; "
                        "pass force to move the alias anyway"
                    )
        except Conflict as exc:
            metrics.ALIAS_CHANGES.labels("promote", "refused").inc()
            log.warning(
                "alias.refused",
                model=name,
                alias=alias,
                version=version,
                holder=previous,
                reason=str(exc),
                by=by,
            )
            raise
    with _mlflow(f"alias {alias!r} of model {name!r}"):
        _move_alias(client, name, alias, str(target.version))
    metrics.ALIAS_CHANGES.labels("promote", "moved").inc()
    log.info(
        "alias.moved",
        model=name,
        alias=alias,
        version=version,
        previous=previous,
        forced=force,
        by=by,
    )
    return AliasChange(
        model=name, alias=alias, version=version, previous=previous, changed=True, forced=force
    )


def rollback(client: MlflowClient, name: str, alias: str, by: str) -> AliasChange:
    """Move `alias` back to the version it held before its current one (as recorded on the
    current one). Conflict when nothing is recorded or the alias points nowhere."""
    _quoted(name)
    with _mlflow(f"registered model {name!r}"):
        client.get_registered_model(name)
        current = alias_version(client, name, alias)
    if current is None:
        metrics.ALIAS_CHANGES.labels("rollback", "refused").inc()
        raise Conflict(f"alias {alias!r} of model {name!r} points to no version")
    now = str(current.version)
    back = (current.tags or {}).get(previous_tag(alias))
    if not back:
        metrics.ALIAS_CHANGES.labels("rollback", "refused").inc()
        raise Conflict(
            f"{name} v{now} records no previous holder of {alias!r} "
            f"(tag {previous_tag(alias)}): nothing to roll back to"
        )
    with _mlflow(f"version {back} of model {name!r} (the previous {alias})"):
        client.get_model_version(name, back)
        client.set_registered_model_alias(name, alias, back)
    metrics.ALIAS_CHANGES.labels("rollback", "moved").inc()
    log.info("alias.rolled_back", model=name, alias=alias, version=back, previous=now, by=by)
    return AliasChange(model=name, alias=alias, version=back, previous=now, changed=True)


def adopt(
    client: MlflowClient, name: str, version: str, data: Path, target: str | None
) -> Adoption:
    """Give `name` v`version` mlstack's extras from the sample rows in the CSV `data`
    (training.adopt). InvalidInput names the failing column, line or model property."""
    from training.adopt import AdoptError
    from training.adopt import adopt as _adopt

    _quoted(name)
    try:
        with _mlflow(f"version {version} of model {name!r}"):
            done = _adopt(client, name, version, data, target)
    except AdoptError as exc:
        raise InvalidInput(str(exc)) from exc
    log.info("version.adopted", model=name, version=version, changed=done.changed, onnx=done.onnx)
    return Adoption(**dataclasses.asdict(done))


WEBHOOK_EVENTS = ("model_version_alias.created", "model_version_alias.deleted")


def ensure_webhook(client: MlflowClient, name: str, url: str, secret: str) -> dict[str, str]:
    """The alias webhook named `name`, created or brought in line with `url`, the secret and
    the alias events (ACTIVE). Idempotent: an existing one is updated, never duplicated.
    MLflow keeps no way to read a secret back, so it is set on every run."""
    events: list[Any] = list(WEBHOOK_EVENTS)
    try:
        return _ensure_webhook(client, name, url, secret, events)
    except RegistryUnavailable as exc:
        raise RegistryUnavailable(
            f"{exc}. If MLflow answers 500 on its webhooks, its "
            "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY differs from the one the stored webhooks were "
            "encrypted with: restore that key (the chart's Secret <release>-mlstack-webhook, key "
            "encryption-key) or delete the stored webhooks"
        ) from exc


def _ensure_webhook(
    client: MlflowClient, name: str, url: str, secret: str, events: list[Any]
) -> dict[str, str]:
    with _mlflow("the webhooks"):
        found = None
        token: str | None = None
        while found is None:
            page = client.list_webhooks(max_results=100, page_token=token)
            found = next((w for w in page if w.name == name), None)
            token = page.token
            if not token:
                break
        if found is None:
            hook = client.create_webhook(name=name, url=url, events=events, secret=secret)
            outcome = "created"
        else:
            hook = client.update_webhook(
                found.webhook_id, url=url, events=events, secret=secret, status="ACTIVE"
            )
            outcome = "updated"
    log.info("webhook.registered", name=name, url=url, outcome=outcome)
    return {"name": name, "id": str(hook.webhook_id), "url": url, "outcome": outcome}
