"""The handful of MLflow REST calls serving needs: resolve an alias, download a version.

Importing the mlflow package would cost seconds of start-up and a large share of a small
pod's memory; these documented endpoints are all the service uses.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlparse

import httpx

from app.errors import ModelLoadError
from training import contract

# Files fetched for every version; the model file itself depends on the manifest.
_ALWAYS = (contract.MANIFEST_FILE, contract.BASELINE_FILE, "input_example.json")
_COMPLETE = ".complete"


class RegistryUnavailable(Exception):
    """MLflow could not be reached or answered with a server error."""


@dataclass(frozen=True)
class VersionRef:
    name: str
    alias: str
    version: str
    run_id: str
    source: str


class Registry:
    def __init__(self, tracking_uri: str, timeout: float) -> None:
        self._base = tracking_uri.rstrip("/")
        self._client = httpx.Client(timeout=timeout)

    def close(self) -> None:
        self._client.close()

    def _get(self, path: str, params: dict[str, str]) -> dict[str, object]:
        try:
            response = self._client.get(f"{self._base}{path}", params=params)
        except httpx.HTTPError as exc:
            raise RegistryUnavailable(f"{self._base}: {exc}") from exc
        if response.status_code >= 500 or response.status_code in (401, 403):
            raise RegistryUnavailable(f"{path} answered {response.status_code}")
        if response.status_code != 200:
            raise ModelLoadError(f"{path} answered {response.status_code}: {response.text[:200]}")
        data = response.json()
        if not isinstance(data, dict):
            raise ModelLoadError(f"{path} answered with a non-object")
        return data

    def resolve(self, name: str, alias: str) -> VersionRef:
        """The version an alias points to. ModelLoadError when the alias does not exist."""
        data = self._get("/api/2.0/mlflow/registered-models/alias", {"name": name, "alias": alias})
        mv = data.get("model_version")
        if not isinstance(mv, dict):
            raise ModelLoadError(f"alias {name}@{alias} did not resolve to a version")
        return VersionRef(
            name, alias, str(mv["version"]), str(mv.get("run_id", "")), str(mv.get("source", ""))
        )

    def run_metrics(self, run_id: str) -> dict[str, float]:
        if not run_id:
            return {}
        data = self._get("/api/2.0/mlflow/runs/get", {"run_id": run_id})
        run = data.get("run", {})
        metrics = run.get("data", {}).get("metrics", []) if isinstance(run, dict) else []
        return {str(m["key"]): float(m["value"]) for m in metrics}

    def download(self, ref: VersionRef, cache_dir: Path) -> Path:
        """Fetch what serving needs of `ref` into `cache_dir/<name>/<version>` (atomically:
        a directory is complete or absent) and return that directory."""
        target = cache_dir / ref.name / ref.version
        if (target / _COMPLETE).exists():
            return target
        data = self._get(
            "/api/2.0/mlflow/model-versions/get-download-uri",
            {"name": ref.name, "version": ref.version},
        )
        root = str(data.get("artifact_uri", ""))
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{ref.version}-", dir=target.parent))
        try:
            for relative in _ALWAYS:
                self._fetch(root, relative, staging)
            manifest = contract.Manifest.from_json((staging / contract.MANIFEST_FILE).read_text())
            model_file = contract.ONNX_FILE if manifest.onnx else manifest.sklearn_file
            self._fetch(root, model_file, staging)
            (staging / _COMPLETE).touch()
            if target.exists():
                shutil.rmtree(target)
            staging.rename(target)
        except contract.ManifestError as exc:
            raise ModelLoadError(f"{ref.name} v{ref.version}: {exc}") from exc
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return target

    def _fetch(self, root: str, relative: str, staging: Path) -> None:
        destination = staging / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        parsed = urlparse(root)
        if parsed.scheme == "mlflow-artifacts":
            url = f"{self._base}/api/2.0/mlflow-artifacts/artifacts/{parsed.path.lstrip('/')}"
            url = f"{url}/{quote(relative)}"
            try:
                with self._client.stream("GET", url) as response:
                    if response.status_code == 404:
                        raise ModelLoadError(f"artifact {relative} is missing at {root}")
                    if response.status_code != 200:
                        raise RegistryUnavailable(f"{url} answered {response.status_code}")
                    with destination.open("wb") as handle:
                        for chunk in response.iter_bytes(1 << 16):
                            handle.write(chunk)
            except httpx.HTTPError as exc:
                raise RegistryUnavailable(f"{url}: {exc}") from exc
        elif parsed.scheme in ("", "file"):
            source = Path(parsed.path) / relative
            if not source.is_file():
                raise ModelLoadError(f"artifact {relative} is missing at {root}")
            shutil.copyfile(source, destination)
        else:
            raise ModelLoadError(
                f"artifact store {parsed.scheme}:// is not readable by the service: run the "
                "tracking server with --serve-artifacts"
            )
