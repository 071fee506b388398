"""A round spread over the pods of an Indexed Job: each pod searches one share of the candidate
grid, and pod 0 gathers them.

Kubernetes is the engine and MLflow the meeting point: there is no scheduler or queue of
mlstack's own. Every pod of one Job carries the same round id (the Job's uid). Pod 0 creates the
round's parent run tagged with it; the others find it there and nest their candidate runs under
it. Each pod tags the parent when its share is done, and pod 0, after its own share, waits for
every tag, takes the best candidate on cross-validation across all of them, refits it on the
training split and registers it through the gate, as a single-pod round does.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from training import contract


class ShardError(Exception):
    """The shards of a round cannot be gathered; the message names the shard and why."""


@dataclass(frozen=True)
class Gathered:
    """A candidate run a shard logged: its family, parameters and cross-validation score."""

    family: str
    run_id: str
    params: dict[str, Any]
    cv_mean: float
    cv_std: float
    fit_seconds: float
    shard: int


def parent_run(
    client: Any,
    experiment_id: str,
    round_id: str,
    *,
    create: bool,
    run_name: str,
    tags: dict[str, str],
    timeout: float,
) -> str:
    """The id of the round's parent run: found by its round id, else created (by pod 0) or
    waited for (by the others, up to `timeout` seconds). Raises ShardError after the wait."""
    deadline = time.monotonic() + timeout
    while True:
        runs = client.search_runs(
            [experiment_id],
            filter_string=(
                f"tags.`{contract.TAG_ROUND_ID}` = '{round_id}' and "
                f"tags.`{contract.TAG_ROUND_ROLE}` = '{contract.ROLE_ROUND}'"
            ),
            order_by=["attributes.start_time ASC"],
            max_results=1,
        )
        if runs:
            return str(runs[0].info.run_id)
        if create:
            run = client.create_run(
                experiment_id,
                run_name=run_name,
                tags={**tags, contract.TAG_ROUND_ID: round_id},
            )
            return str(run.info.run_id)
        if time.monotonic() >= deadline:
            raise ShardError(
                f"no round run with {contract.TAG_ROUND_ID}={round_id} appeared within "
                f"{timeout:g} s: pod 0 of the Job creates it; see its log"
            )
        time.sleep(2)


def report_done(client: Any, parent_id: str, index: int, searched: int) -> None:
    """Tag the round's run: shard `index` has logged its `searched` candidate runs."""
    client.set_tag(parent_id, f"{contract.TAG_SHARD_PREFIX}{index}", f"done {searched}")


def wait_for_shards(client: Any, parent_id: str, shards: int, timeout: float) -> None:
    """Wait until every shard has tagged the round's run done. Raises ShardError naming the
    shards still missing after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        tags = client.get_run(parent_id).data.tags
        missing = [i for i in range(shards) if f"{contract.TAG_SHARD_PREFIX}{i}" not in tags]
        if not missing:
            return
        if time.monotonic() >= deadline:
            raise ShardError(
                f"shards {', '.join(map(str, missing))} of {shards} did not finish within "
                f"{timeout:g} s (MLSTACK_SHARD_WAIT_SECONDS): see their pods' logs"
            )
        time.sleep(2)


def gather(client: Any, experiment_id: str, parent_id: str, dataset_sha256: str) -> list[Gathered]:
    """Every finished candidate run under the round's run. Raises ShardError when a shard
    trained on other data (its dataset hash differs)."""
    runs = client.search_runs(
        [experiment_id],
        filter_string=(
            f"tags.mlflow.parentRunId = '{parent_id}' and "
            f"tags.`{contract.TAG_ROUND_ROLE}` = '{contract.ROLE_CANDIDATE}' and "
            "attributes.status = 'FINISHED'"
        ),
        max_results=10_000,
    )
    found = []
    for run in runs:
        tags, metrics = run.data.tags, run.data.metrics
        if tags.get(contract.TAG_DATASET_HASH) != dataset_sha256:
            raise ShardError(
                f"candidate run {run.info.run_id} (shard {tags.get(contract.TAG_SHARD)}) was "
                f"trained on dataset {tags.get(contract.TAG_DATASET_HASH)}, not "
                f"{dataset_sha256}: every pod of a round must read the same data"
            )
        found.append(
            Gathered(
                tags[contract.TAG_CANDIDATE],
                run.info.run_id,
                json.loads(tags[contract.TAG_PARAMS]),
                metrics[contract.CV_MEAN_METRIC],
                metrics[contract.CV_STD_METRIC],
                metrics[contract.FIT_SECONDS_METRIC],
                int(tags.get(contract.TAG_SHARD, "0")),
            )
        )
    return found
