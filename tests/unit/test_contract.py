"""The manifest and baseline formats that cross from training to serving."""

from __future__ import annotations

import math

import pytest

from training import contract

MANIFEST = contract.Manifest(
    features=("a", "b"),
    classes=("x", "y"),
    sklearn_file=contract.SKOPS_FILE,
    sklearn_format="skops",
    skops_trusted_types=("t",),
    onnx=True,
    metrics={"test_f1_macro": 0.9},
    dataset="d",
    dataset_sha256="0" * 64,
)


def test_manifest_round_trips() -> None:
    assert contract.Manifest.from_json(MANIFEST.to_json()) == MANIFEST


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[]", "not a JSON object"),
        ("{", "not JSON"),
        ('{"manifest_version": 99}', "manifest_version 99 is not supported"),
        (MANIFEST.to_json().replace('"features"', '"feature_list"'), "no key 'features'"),
        (MANIFEST.to_json().replace('"y"', "1"), "'classes' is not a list of strings"),
    ],
)
def test_malformed_manifest_names_the_problem(text: str, message: str) -> None:
    with pytest.raises(contract.ManifestError, match=message.replace("(", r"\(")):
        contract.Manifest.from_json(text)


def test_baseline_round_trips_with_infinite_outer_edges() -> None:
    baseline = {"a": contract.FeatureBaseline((-math.inf, 1.0, 2.0, math.inf), (0.2, 0.5, 0.3))}
    assert contract.baseline_from_json(contract.baseline_to_json(baseline)) == baseline
