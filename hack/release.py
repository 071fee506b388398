"""mlstack's one version, and the release that moves it.

The version is set in one place, `[project] version` of pyproject.toml. Every other copy (the
chart's `version` and `appVersion`, the Dockerfile's `VERSION` defaults, the lock file's entry
for mlstack, the training image's tag in the README and the e2e user image) is written from it
by `bump` and compared with it by `check`; `make release` then regenerates manifests/ and the
chart's README.

    python hack/release.py version          print the version
    python hack/release.py check            exit 1 when a copy differs, naming it
    python hack/release.py notes X.Y.Z      print the CHANGELOG.md section of X.Y.Z
    python hack/release.py bump X.Y.Z       (`make release VERSION=X.Y.Z`) refuse a dirty tree,
                                            write X.Y.Z everywhere, turn CHANGELOG.md's
                                            Unreleased section into X.Y.Z's

Only the standard library: the release workflow runs it before any environment exists.
"""

from __future__ import annotations

import datetime
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?$")
UNRELEASED = "## [Unreleased]"


class ReleaseError(Exception):
    """A refusal: the message says what to change."""


@dataclass(frozen=True)
class Copy:
    """One place a copy of the version is written: a file and a pattern whose group 2 is it."""

    path: str
    pattern: str
    count: int = 1

    def regex(self) -> re.Pattern[str]:
        return re.compile(self.pattern, re.MULTILINE)


SOURCE = Copy("pyproject.toml", r'^(version = ")([^"]+)(")')
COPIES = (
    Copy("charts/mlstack/Chart.yaml", r"^(version: )(\S+)()"),
    Copy("charts/mlstack/Chart.yaml", r'^(appVersion: ")([^"]+)(")'),
    Copy("Dockerfile", r"^(ARG VERSION=)(\S+)()", count=3),
    Copy("uv.lock", r'(\[\[package\]\]\nname = "mlstack"\nversion = ")([^"]+)(")'),
    Copy("README.md", r"^(ARG TRAINING_IMAGE=mlstack-training:)(\S+)()"),
    Copy("tests/e2e/user_training/Dockerfile", r"(TRAINING_IMAGE=mlstack-training:)(\S+)()", 2),
)


def _read(copy: Copy, root: Path) -> list[str]:
    return [m.group(2) for m in copy.regex().finditer((root / copy.path).read_text())]


def version(root: Path = ROOT) -> str:
    found = _read(SOURCE, root)
    if len(found) != 1:
        raise ReleaseError(f"{SOURCE.path} has {len(found)} `version = ` lines, not one")
    return found[0]


def check(root: Path = ROOT) -> list[str]:
    """Each copy that differs from the version, or is missing, as a sentence."""
    wanted = version(root)
    problems = []
    for copy in COPIES:
        found = _read(copy, root)
        if len(found) != copy.count:
            problems.append(
                f"{copy.path}: {len(found)} matches of {copy.pattern!r}, expected {copy.count}"
            )
        problems += [
            f"{copy.path} says {value}, {SOURCE.path} says {wanted}: run "
            f"`make release VERSION={wanted}` or set it by hand"
            for value in found
            if value != wanted
        ]
    return problems


def notes(wanted: str, root: Path = ROOT) -> str:
    """The body of CHANGELOG.md's `## [X.Y.Z]` section."""
    text = (root / "CHANGELOG.md").read_text()
    match = re.search(
        rf"^## \[{re.escape(wanted)}\][^\n]*\n(.*?)(?=^## \[|^\[[^\]]+\]: |\Z)", text, re.M | re.S
    )
    if not match or not match.group(1).strip():
        raise ReleaseError(
            f"CHANGELOG.md has no section `## [{wanted}]` with entries: `make release` writes "
            f"it from the {UNRELEASED} section"
        )
    return match.group(1).strip() + "\n"


def _git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, check=True
    ).stdout


def _changelog(text: str, new: str, today: str) -> str:
    if UNRELEASED not in text:
        raise ReleaseError(f"CHANGELOG.md has no `{UNRELEASED}` section to release")
    head, rest = text.split(UNRELEASED, 1)
    parts = re.split(r"(?=^## \[|^\[[^\]]+\]: )", rest, maxsplit=1, flags=re.M)
    body, tail = parts[0], parts[1] if len(parts) > 1 else ""
    if not re.search(r"^- ", body, re.M):
        raise ReleaseError(
            f"CHANGELOG.md's {UNRELEASED} section lists no change: add what {new} changes "
            "(Keep a Changelog: ### Added, ### Changed, ### Fixed...)"
        )
    return f"{head}{UNRELEASED}\n\n## [{new}] - {today}{body.rstrip()}\n\n{tail}"


def bump(new: str, root: Path = ROOT, today: str | None = None) -> None:
    if not SEMVER.match(new):
        raise ReleaseError(f"VERSION={new!r} is not a semantic version such as 1.2.3")
    dirty = _git(root, "status", "--porcelain").strip()
    if dirty:
        raise ReleaseError(
            "the working tree has uncommitted changes; commit or stash them first:\n" + dirty
        )
    old = version(root)
    if new == old:
        raise ReleaseError(f"{new} is already the version")
    if f"v{new}" in _git(root, "tag", "--list", f"v{new}").split():
        raise ReleaseError(f"tag v{new} exists already: choose another VERSION")
    # Every new text is made before any is written: a refusal leaves the tree as it was.
    changelog = root / "CHANGELOG.md"
    texts = {
        changelog: _changelog(
            changelog.read_text(), new, today or datetime.date.today().isoformat()
        )
    }
    for copy in (SOURCE, *COPIES):
        path = root / copy.path
        text, n = copy.regex().subn(
            lambda m: f"{m.group(1)}{new}{m.group(3)}", texts.get(path, path.read_text())
        )
        if n != copy.count:
            raise ReleaseError(f"{copy.path}: {n} matches of {copy.pattern!r}, not {copy.count}")
        texts[path] = text
    for path, text in texts.items():
        path.write_text(text)


def main(argv: list[str]) -> int:
    try:
        match argv:
            case ["version"]:
                print(version())
            case ["check"]:
                problems = check()
                for problem in problems:
                    print(problem, file=sys.stderr)
                return 1 if problems else 0
            case ["notes", wanted]:
                sys.stdout.write(notes(wanted))
            case ["bump", new]:
                bump(new)
                print(f"version {new} written; CHANGELOG.md section [{new}] made")
            case _:
                print(__doc__, file=sys.stderr)
                return 2
    except ReleaseError as exc:
        print(f"release: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
