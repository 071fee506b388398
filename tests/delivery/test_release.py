"""The one version and `make release`'s bump (hack/release.py), on a copy of the versioned
files in a git repository of their own."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _release() -> ModuleType:
    spec = importlib.util.spec_from_file_location("release", ROOT / "hack" / "release.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["release"] = module
    spec.loader.exec_module(module)
    return module


release = _release()
FILES = sorted({c.path for c in (release.SOURCE, *release.COPIES)} | {"CHANGELOG.md"})


def _git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, check=True
    ).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    for name in FILES:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "copy")
    return tmp_path


def _snapshot(root: Path) -> dict[str, str]:
    return {name: (root / name).read_text() for name in FILES}


def test_the_repository_has_one_version() -> None:
    assert release.check(ROOT) == []


def test_bump_writes_every_copy_and_releases_the_unreleased_section(repo: Path) -> None:
    old = release.version(repo)
    unreleased = (repo / "CHANGELOG.md").read_text().split("## [Unreleased]")[1].split("\n## [")[0]
    release.bump("9.8.7", repo, today="2027-01-02")
    assert release.version(repo) == "9.8.7" != old
    assert release.check(repo) == []
    changelog = (repo / "CHANGELOG.md").read_text()
    assert "## [Unreleased]\n\n## [9.8.7] - 2027-01-02\n" in changelog
    assert f"## [{old}]" in changelog
    assert release.notes("9.8.7", repo).strip() == unreleased.strip()
    # The next bump finds nothing unreleased.
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "9.8.7")
    with pytest.raises(release.ReleaseError, match="lists no change"):
        release.bump("9.8.8", repo)


def test_a_copy_that_drifts_is_named(repo: Path) -> None:
    chart = repo / "charts/mlstack/Chart.yaml"
    chart.write_text(
        chart.read_text().replace(f"version: {release.version(repo)}", "version: 0.0.9")
    )
    (problem,) = release.check(repo)
    assert "charts/mlstack/Chart.yaml says 0.0.9" in problem and "make release" in problem


@pytest.mark.parametrize(
    ("version", "dirty", "message"),
    [
        ("1.2", False, "not a semantic version"),
        ("v1.2.3", False, "not a semantic version"),
        ("2.0.0", True, "uncommitted changes"),
    ],
)
def test_refusals_leave_the_tree_as_it_was(
    repo: Path, version: str, dirty: bool, message: str
) -> None:
    if dirty:
        (repo / "README.md").write_text((repo / "README.md").read_text() + "\nedit\n")
    before = _snapshot(repo)
    with pytest.raises(release.ReleaseError, match=message):
        release.bump(version, repo)
    assert _snapshot(repo) == before


def test_the_same_version_or_an_existing_tag_is_refused(repo: Path) -> None:
    with pytest.raises(release.ReleaseError, match="already the version"):
        release.bump(release.version(repo), repo)
    _git(repo, "tag", "v3.0.0")
    with pytest.raises(release.ReleaseError, match=r"tag v3\.0\.0 exists"):
        release.bump("3.0.0", repo)


def test_notes_of_an_unknown_version_are_refused(repo: Path) -> None:
    with pytest.raises(release.ReleaseError, match=r"no section `## \[7.7.7\]`"):
        release.notes("7.7.7", repo)
    assert "training round" in release.notes(release.version(repo), repo)
