"""Turn CustomResourceDefinitions into strict JSON schemas in kubeconform's layout.

    python hack/chart/crd_schemas.py OUT_DIR CRD.yaml...

writes OUT_DIR/<group>/<kind lowercased>_<version>.json for every served version, for
`-schema-location 'OUT_DIR/{{.Group}}/{{.ResourceKind}}_{{.ResourceAPIVersion}}.json'`.
Strict as kubeconform's own Kubernetes schemas are: every object that lists its properties
refuses unknown ones (`additionalProperties: false`), unless the CRD preserves unknown fields.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

_PRESERVE = "x-kubernetes-preserve-unknown-fields"


def strict(schema: Any) -> Any:
    """A copy of an OpenAPI v3 schema that refuses unknown properties and types int-or-string."""
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: strict(value) for key, value in schema.items()}
    if out.pop("x-kubernetes-int-or-string", False):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if "properties" in out and "additionalProperties" not in out and not out.get(_PRESERVE):
        out["additionalProperties"] = False
    # JSON Schema has no `nullable`: allow null explicitly where the CRD does.
    if out.pop("nullable", False) and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


def convert(crd_file: Path, out_dir: Path) -> list[Path]:
    crd = yaml.safe_load(crd_file.read_text())
    if crd.get("kind") != "CustomResourceDefinition":
        raise ValueError(f"{crd_file} is a {crd.get('kind')!r}, not a CustomResourceDefinition")
    group = crd["spec"]["group"]
    kind = crd["spec"]["names"]["kind"].lower()
    written = []
    for version in crd["spec"]["versions"]:
        if not version.get("served", True):
            continue
        schema = strict(version["schema"]["openAPIV3Schema"])
        target = out_dir / group / f"{kind}_{version['name']}.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(schema, indent=1, sort_keys=True))
        written.append(target)
    return written


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    out_dir = Path(argv[0])
    for crd_file in argv[1:]:
        for path in convert(Path(crd_file), out_dir):
            print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
