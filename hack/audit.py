"""pip-audit over the lock file: every locked package, checked against PyPI's advisories.

`make audit` (the security workflow runs it, with `--sarif FILE` for code scanning). It fails
on any known vulnerability, and on any package it could not check: an audit that skipped
packages is not a pass. PyPI's JSON API is its advisory source; a mirror that serves only the
package index (as on the machines without the internet this project is built on) cannot answer
it, and the audit then fails saying so.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _requirements(directory: Path) -> Path:
    path = directory / "requirements.txt"
    exported = subprocess.run(
        ["uv", "export", "--frozen", "--all-extras", "--no-emit-project", "--no-hashes"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    path.write_text(exported)
    return path


def _sarif(report: dict) -> dict:
    results = [
        {
            "ruleId": vuln["id"],
            "level": "error",
            "message": {
                "text": f"{dep['name']} {dep['version']}: {vuln['id']} "
                f"(fixed in {', '.join(vuln.get('fix_versions') or ['no release yet'])}). "
                f"{vuln.get('description', '')}".strip()
            },
            "locations": [{"physicalLocation": {"artifactLocation": {"uri": "uv.lock"}}}],
        }
        for dep in report.get("dependencies", [])
        for vuln in dep.get("vulns", [])
    ]
    rules = [{"id": r["ruleId"], "shortDescription": {"text": r["ruleId"]}} for r in results]
    return {
        "version": "2.1.0",
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "runs": [{"tool": {"driver": {"name": "pip-audit", "rules": rules}}, "results": results}],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sarif", type=Path, help="Also write the findings here as SARIF.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        requirements = _requirements(Path(directory))
        run = subprocess.run(
            [
                *(sys.executable, "-m", "pip_audit", "--requirement", str(requirements)),
                *("--no-deps", "--disable-pip", "--format", "json", "--progress-spinner", "off"),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
    try:
        report = json.loads(run.stdout)
    except json.JSONDecodeError:
        print(f"pip-audit failed (exit {run.returncode}):\n{run.stderr.strip()}", file=sys.stderr)
        return 1
    if args.sarif:
        args.sarif.write_text(json.dumps(_sarif(report), indent=2))
    dependencies = report.get("dependencies", [])
    skipped = [d for d in dependencies if d.get("skip_reason")]
    vulnerable = [d for d in dependencies if d.get("vulns")]
    for dep in vulnerable:
        ids = ", ".join(v["id"] for v in dep["vulns"])
        print(f"{dep['name']} {dep['version']}: {ids}", file=sys.stderr)
    if skipped:
        print(
            f"pip-audit could not check {len(skipped)} of {len(dependencies)} packages "
            f"({skipped[0]['name']}: {skipped[0]['skip_reason']}): its advisory source, PyPI's "
            "JSON API, does not answer from here; run it where PyPI is reachable (the security "
            "workflow does)",
            file=sys.stderr,
        )
    if vulnerable or skipped:
        return 1
    print(f"pip-audit: no known vulnerability in the {len(dependencies)} locked packages")
    return 0


if __name__ == "__main__":
    sys.exit(main())
