"""Where a dataset file comes from: a local path, an `s3://` object or an `https://` URL.

A remote file is copied into a local temporary file first, so the CSV and Parquet readers see
one kind of input and a half-read download can never be trained on. Every failure is a
DatasetError naming the URL and the reason.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from training.data import DatasetError

FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
_COMPRESSIONS = (".gz", ".bz2", ".xz")
_CHUNK = 1 << 20


def file_format(source: str) -> str:
    """`csv` or `parquet`, from the name's suffix (a URL's path, its query ignored; `.gz`,
    `.bz2` or `.xz` compression of a CSV allowed)."""
    path = PurePosixPath(urlsplit(source).path if "://" in source else source)
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in _COMPRESSIONS:
        suffixes = suffixes[:-1]
    if suffixes and suffixes[-1] in FORMATS:
        return FORMATS[suffixes[-1]]
    raise DatasetError(
        f"{source!r}: cannot tell the file's format from its name; it must end in "
        f"{', '.join(FORMATS)} (a CSV may also be compressed: .csv.gz)"
    )


def dataset_name(source: str) -> str:
    """The file's name without its suffixes: `s3://b/p/churn.csv.gz` → `churn`."""
    name = PurePosixPath(urlsplit(source).path if "://" in source else source).name
    for suffixes in (_COMPRESSIONS, tuple(FORMATS)):
        for suffix in suffixes:
            if name.lower().endswith(suffix):
                name = name[: -len(suffix)]
                break
    return name or "dataset"


@contextmanager
def local_copy(
    source: str, *, s3_endpoint_url: str | None = None, timeout: float = 60.0
) -> Iterator[Path]:
    """A local path holding `source`'s bytes, for the duration of the block. Local paths are
    used in place; remote ones are downloaded to a temporary file, deleted afterwards.
    Raises DatasetError naming the URL and why it cannot be read."""
    scheme = urlsplit(source).scheme.lower() if "://" in source else ""
    if scheme in ("", "file"):
        path = Path(urlsplit(source).path if scheme == "file" else source)
        if not path.is_file():
            raise DatasetError(f"data file {str(path)!r} does not exist")
        yield path
        return
    if scheme not in ("s3", "https"):
        # Plain http:// is refused: the bytes a model is trained on would cross the network
        # unauthenticated. A private CA is trusted with SSL_CERT_FILE.
        raise DatasetError(
            f"{_without_credentials(source)}: unsupported scheme {scheme!r}; use a path, "
            "s3:// or https://"
        )
    suffix = "".join(PurePosixPath(urlsplit(source).path).suffixes[-2:])
    with tempfile.TemporaryDirectory(prefix="mlstack-data-") as tmp:
        target = Path(tmp) / f"data{suffix}"
        if scheme == "s3":
            _from_s3(source, target, s3_endpoint_url)
        else:
            _from_http(source, target, timeout)
        yield target


def _from_http(url: str, target: Path, timeout: float) -> None:
    import httpx

    shown = _without_credentials(url)
    partial = target.with_suffix(target.suffix + ".part")
    try:
        with (
            httpx.stream("GET", url, timeout=timeout, follow_redirects=True) as response,
        ):
            if response.status_code != 200:
                raise DatasetError(
                    f"cannot read {shown}: the server answered {response.status_code} "
                    f"{response.reason_phrase}"
                )
            with partial.open("wb") as handle:
                for chunk in response.iter_bytes(_CHUNK):
                    handle.write(chunk)
    except httpx.HTTPError as exc:
        raise DatasetError(f"cannot read {shown}: {type(exc).__name__}: {exc}") from exc
    os.replace(partial, target)


def _from_s3(url: str, target: Path, endpoint_url: str | None) -> None:
    import boto3
    import botocore.exceptions

    parts = urlsplit(url)
    bucket, key = parts.netloc, parts.path.lstrip("/")
    if not bucket or not key:
        raise DatasetError(f"{url!r}: an S3 URL is s3://BUCKET/KEY")
    client = boto3.client("s3", endpoint_url=endpoint_url or None)
    partial = target.with_suffix(target.suffix + ".part")
    try:
        body = client.get_object(Bucket=bucket, Key=key)["Body"]
        with partial.open("wb") as handle:
            shutil.copyfileobj(body, handle, _CHUNK)
    except botocore.exceptions.ClientError as exc:
        error = exc.response.get("Error", {})
        code = error.get("Code", "error")
        raise DatasetError(f"cannot read {url}: {code}: {error.get('Message', exc)}") from exc
    except botocore.exceptions.NoCredentialsError as exc:
        raise DatasetError(
            f"cannot read {url}: no S3 credentials (set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, or give the pod a role)"
        ) from exc
    except (botocore.exceptions.BotoCoreError, OSError) as exc:
        where = f" at {endpoint_url}" if endpoint_url else ""
        raise DatasetError(f"cannot read {url}{where}: {exc}") from exc
    os.replace(partial, target)


def _without_credentials(url: str) -> str:
    parts = urlsplit(url)
    if parts.username or parts.password:
        parts = parts._replace(netloc=parts.hostname or "")
    return parts._replace(query="").geturl() if parts.query else parts.geturl()
