"""What ships imports nothing of the development tree: the images and the wheel hold these four
packages only, so an import of `devsupport`, `bench`, `hack` or `tests` would fail in a pod."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHIPPED = ("app", "training", "control", "kernel")
DEVELOPMENT = {"devsupport", "bench", "hack", "tests"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", SHIPPED)
def test_shipped_code_never_imports_the_development_tree(package: str) -> None:
    offenders = {
        str(path.relative_to(REPO)): sorted(_imports(path) & DEVELOPMENT)
        for path in sorted((REPO / package).rglob("*.py"))
        if _imports(path) & DEVELOPMENT
    }
    assert offenders == {}


def test_the_images_copy_the_shipped_packages_and_nothing_else() -> None:
    copied = {
        line.split()[1]
        for line in (REPO / "Dockerfile").read_text().splitlines()
        if line.startswith("COPY ") and not line.startswith("COPY --")
    }
    assert {p for p in copied if p in SHIPPED or p in DEVELOPMENT} == set(SHIPPED)
