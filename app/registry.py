"""The handful of MLflow REST calls serving needs: resolve an alias, download a version.

Importing the mlflow package would cost seconds of start-up and a large share of a small
pod's memory; these documented endpoints are all the service uses.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlparse

import httpx

from app.errors import ModelLoadError, ModelRefused
from training import contract, mlmodel

_COMPLETE = ".complete"


class _Missing(Exception):
    """An artifact the store does not hold."""


class RegistryUnavailable(Exception):
    """MLflow could not be reached or answered with a server error."""


@dataclass(frozen=True)
class VersionRef:
    name: str
    alias: str
    version: str
    run_id: str
    source: str
    # Where `mlstack adopt` put this version's extras (contract.TAG_EXTRAS_URI), if anywhere.
    extras_uri: str = ""

    @property
    def key(self) -> str:
        """What identifies the files served: the version, and its extras when adopted."""
        if not self.extras_uri:
            return self.version
        digest = hashlib.sha256(self.extras_uri.encode()).hexdigest()[:12]
        return f"{self.version}-{digest}"


class Registry:
    def __init__(
        self, tracking_uri: str, timeout: float, credentials: tuple[str, str] | None = None
    ) -> None:
        """`credentials` (user, password) go with every call as HTTP basic auth."""
        self._base = tracking_uri.rstrip("/")
        self._client = httpx.Client(timeout=timeout, auth=credentials)

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
        tags = {
            str(t.get("key")): str(t.get("value"))
            for t in mv.get("tags", []) or []
            if isinstance(t, dict)
        }
        return VersionRef(
            name,
            alias,
            str(mv["version"]),
            str(mv.get("run_id", "")),
            str(mv.get("source", "")),
            tags.get(contract.TAG_EXTRAS_URI, ""),
        )

    def run_metrics(self, run_id: str) -> dict[str, float]:
        if not run_id:
            return {}
        data = self._get("/api/2.0/mlflow/runs/get", {"run_id": run_id})
        run = data.get("run", {})
        metrics = run.get("data", {}).get("metrics", []) if isinstance(run, dict) else []
        return {str(m["key"]): float(m["value"]) for m in metrics}

    def download(self, ref: VersionRef, cache_dir: Path) -> Path:
        """Fetch what serving needs of `ref` into `cache_dir/<name>/<key>` (atomically: a
        directory is complete or absent) and return that directory.

        The directory holds the model's files at their relative paths; an adopted version's
        extras (manifest, baseline, ONNX export, input example) are laid over them under the
        same relative names. Raises ModelRefused for a version that cannot be served.
        """
        target = cache_dir / ref.name / ref.key
        if (target / _COMPLETE).exists():
            return target
        data = self._get(
            "/api/2.0/mlflow/model-versions/get-download-uri",
            {"name": ref.name, "version": ref.version},
        )
        root = str(data.get("artifact_uri", ""))
        extras = ref.extras_uri or root
        if urlparse(extras).scheme != urlparse(root).scheme:
            # A tag must not point the pods at files outside the registry's artifact store.
            raise ModelRefused(
                f"{ref.name} v{ref.version}: {contract.TAG_EXTRAS_URI} {extras!r} is not in the "
                f"registry's artifact store ({root}); run mlstack adopt again"
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{ref.key}-", dir=target.parent))
        try:
            if not self._fetch(root, contract.MLMODEL_FILE, staging, required=False):
                raise ModelRefused(
                    f"{ref.name} v{ref.version} has no {contract.MLMODEL_FILE} at {root}: it is "
                    "not an MLflow model; register a model logged with mlflow.sklearn.log_model "
                    "or mlflow.onnx.log_model"
                )
            files = mlmodel.read_mlmodel((staging / contract.MLMODEL_FILE).read_bytes())
            manifest = None
            if self._fetch(extras, contract.MANIFEST_FILE, staging, required=bool(ref.extras_uri)):
                manifest = contract.Manifest.from_json(
                    (staging / contract.MANIFEST_FILE).read_bytes()
                )
                self._fetch(extras, contract.BASELINE_FILE, staging, required=False)
            if files.input_example is not None:
                self._fetch(root, files.input_example, staging, required=False)
            elif ref.extras_uri:
                self._fetch(extras, contract.INPUT_EXAMPLE_FILE, staging, required=False)
            if manifest is not None and manifest.onnx:
                self._fetch(extras, contract.ONNX_FILE, staging)
            else:
                self._fetch(root, files.model_file, staging)
            (staging / _COMPLETE).touch()
            if target.exists():
                shutil.rmtree(target)
            staging.rename(target)
        except contract.ManifestError as exc:
            raise ModelRefused(f"{ref.name} v{ref.version}: {exc}") from exc
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return target

    def _fetch(self, root: str, relative: str, staging: Path, required: bool = True) -> bool:
        """Copy `root/relative` into `staging`. False when it is absent and not `required`."""
        try:
            self._copy(root, relative, staging)
        except _Missing as exc:
            if required:
                raise ModelLoadError(str(exc)) from exc
            return False
        return True

    def _copy(self, root: str, relative: str, staging: Path) -> None:
        destination = staging / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        parsed = urlparse(root)
        if parsed.scheme == "mlflow-artifacts":
            url = f"{self._base}/api/2.0/mlflow-artifacts/artifacts/{parsed.path.lstrip('/')}"
            url = f"{url}/{quote(relative)}"
            try:
                with self._client.stream("GET", url) as response:
                    if response.status_code == 404:
                        raise _Missing(f"artifact {relative} is missing at {root}")
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
                raise _Missing(f"artifact {relative} is missing at {root}")
            shutil.copyfile(source, destination)
        else:
            raise ModelLoadError(
                f"artifact store {parsed.scheme}:// is not readable by the service: run the "
                "tracking server with --serve-artifacts"
            )
