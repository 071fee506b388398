"""schemathesis against a running service's OpenAPI document, and its report as counts.

The CLI runs as `make test` and a developer would run it (settings in tests/schemathesis.toml:
seed, examples per operation, checks); its NDJSON report is read into cases and statuses per
operation and every failed check.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

CONFIG = Path(__file__).with_name("schemathesis.toml")
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
# The checks that say whether an answer is what the document declares.
CONFORMANCE = frozenset(
    {
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
    }
)
_METHODS = frozenset({"get", "put", "post", "delete", "patch", "head", "options", "trace"})


@dataclass
class Operation:
    cases: int = 0
    statuses: Counter[int] = field(default_factory=Counter)


@dataclass
class Report:
    """One schemathesis run. `operations` holds the document's operations (`GET /model`) and
    the probes of methods it does not declare (`TRACE /model`), each with its cases."""

    title: str
    documented: frozenset[str]
    operations: dict[str, Operation]
    failures: list[str]  # `<check> on <operation>: <title> (<status>)`, one per failed check
    errors: list[str]  # requests that got no answer (timeouts, refused connections)
    command: str
    output: str

    @property
    def cases(self) -> int:
        return sum(operation.cases for operation in self.operations.values())

    @property
    def server_errors(self) -> int:
        return sum(
            count
            for operation in self.operations.values()
            for status, count in operation.statuses.items()
            if status >= 500
        )

    @property
    def schema_failures(self) -> int:
        return sum(failure.split(" ", 1)[0] in CONFORMANCE for failure in self.failures)

    def untested(self) -> list[str]:
        """Documented operations that got no case."""
        return sorted(
            label for label in self.documented if not self.operations.get(label, Operation()).cases
        )

    def statuses(self, label: str) -> Counter[int]:
        return self.operations.get(label, Operation()).statuses

    def summary(self, what: str) -> str:
        statuses: Counter[int] = Counter()
        for operation in self.operations.values():
            statuses.update(operation.statuses)
        shown = ", ".join(f"{status}: {count}" for status, count in sorted(statuses.items()))
        return (
            f"schemathesis, {self.title} ({what}): {len(self.documented)} operations, "
            f"{self.cases} cases, {self.server_errors} 5xx, {self.schema_failures} schema "
            f"failures, {len(self.failures) - self.schema_failures} other failed checks, "
            f"{len(self.errors)} errors; statuses {{{shown}}}"
        )

    def problems(self) -> str:
        """What failed, for an assertion message: failures, errors, then the CLI's output."""
        lines = [*self.failures[:30], *self.errors[:10]]
        return "\n".join([*lines, f"command: {self.command}", self.output[-6000:]])


def run(url: str, report_dir: Path, headers: dict[str, str] | None = None) -> Report:
    """Fuzz every operation of `url`/openapi.json with the suite's settings, sending `headers`
    (e.g. the API key) with every request."""
    document = httpx.get(f"{url}/openapi.json", timeout=10).raise_for_status().json()
    documented = frozenset(
        f"{method.upper()} {path}"
        for path, item in document["paths"].items()
        for method in item
        if method in _METHODS
    )
    report_dir.mkdir(parents=True, exist_ok=True)
    ndjson = report_dir / "events.ndjson"
    command = [str(SCHEMATHESIS), "--config-file", str(CONFIG), "--no-color", "run"]
    command += [f"{url}/openapi.json", "--report", "ndjson", "--report-ndjson-path", str(ndjson)]
    shown = list(command)  # as run, the header values masked
    for name, value in (headers or {}).items():
        command += ["--header", f"{name}: {value}"]
        shown += ["--header", f"'{name}: ***'"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    report = _read(ndjson, document["info"]["title"], documented, " ".join(shown), result.stdout)
    if result.returncode != 0 and not (report.failures or report.errors):
        report.errors.append(f"schemathesis exited with {result.returncode}: {result.stderr}")
    return report


def _read(
    ndjson: Path, title: str, documented: frozenset[str], command: str, output: str
) -> Report:
    operations: dict[str, Operation] = {}
    failures: list[str] = []
    errors: list[str] = [] if ndjson.is_file() else [f"no report at {ndjson}"]
    for line in ndjson.read_text().splitlines() if ndjson.is_file() else []:
        event = json.loads(line)
        if "NonFatalError" in event:
            error = event["NonFatalError"]
            errors.append(
                f"{error['label']}: {error['value']['type']}: {error['value']['message']}"
            )
        elif "FatalError" in event:
            errors.append(f"fatal: {event['FatalError']}")
        elif "ScenarioFinished" in event:
            recorder = event["ScenarioFinished"]["recorder"]
            for case_id, case in recorder.get("cases", {}).items():
                value = case["value"]
                label = f"{value['method']} {value['path']}"
                operation = operations.setdefault(label, Operation())
                operation.cases += 1
                response = recorder["interactions"].get(case_id, {}).get("response")
                status = response["status_code"] if response else None
                if status is not None:
                    operation.statuses[status] += 1
                for check in recorder["checks"].get(case_id, []):
                    if check["status"] == "failure":
                        failure = check["failure_info"]["failure"]
                        failures.append(
                            f"{check['name']} on {label}: {failure['title']} ({status}): "
                            f"{failure.get('message', '')[:300]}"
                        )
    return Report(title, documented, operations, failures, errors, command, output)


def fuzz(
    url: str, report_dir: Path, headers: dict[str, str] | None, what: str, capsys: Any
) -> Report:
    """Run schemathesis against `url`, print its counts (whatever pytest captures), and fail
    on an untested operation, a 5xx, a failed check or an error."""
    report = run(url, report_dir, headers)
    with capsys.disabled():  # the counts, in every run's output
        print(f"\n{report.command}\n{report.summary(what)}")
    assert not report.untested(), f"operations without a case: {report.untested()}"
    assert report.server_errors == 0, report.problems()
    assert not report.failures and not report.errors, report.problems()
    return report
