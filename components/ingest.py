"""Ingest: fetch a dataset from an http(s), s3, file or package URL into a local file, safely.

Guards against what goes wrong with real URLs: servers that are down (retried with backoff), missing files (not
retried), login or error pages served instead of data, files far larger than expected, and empty responses.

A ``package://<importable package>/<path>`` URL is a copy of a dataset that an installed Python package ships (e.g.
``package://sklearn.datasets/data/iris.csv``): it is read from the environment the step runs in, with no network,
and the result names the distribution, its version and the file it really read.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import unquote, urlparse

from kfops.base.errors import KfopsError, Step, in_step
from kfops.base.storage import describe_endpoint_error, parse_s3_uri, s3_client

#: Default cap on a dataset's size: the workflow loads it into memory.
DEFAULT_MAX_BYTES = 512 * 1024 * 1024
_CHUNK = 1024 * 1024
_HTML_MARKERS = (b"<!doctype html", b"<html", b"<head", b"<body")

T = TypeVar("T")


@dataclass(frozen=True)
class FetchResult:
    """What ``fetch`` wrote: where, how many bytes, and their SHA-256."""

    path: Path
    size: int
    sha256: str
    origin: str = ""
    """Where the bytes really came from when the URL does not say it all (a package URL: distribution, version and
    file), else the URL."""


class _Transient(Exception):
    """A failure worth retrying (connection refused, timeout, 5xx, throttling)."""


@in_step(Step.INGEST)
def fetch(url: str, dest: Path, *, max_bytes: int = DEFAULT_MAX_BYTES, retries: int = 3, backoff: float = 1.0,
          timeout: float = 30.0) -> FetchResult:
    """Download ``url`` into ``dest``.

    Args:
        url: ``http(s)://``, ``s3://bucket/key``, ``file:///absolute/path`` (a bare path counts as a file) or
            ``package://<importable package>/<path of a file inside it>``.
        dest: Local file to write; it only appears once the download is complete and checked.
        max_bytes: Refuse anything larger.
        retries: Extra attempts after a transient failure (the wait doubles from ``backoff`` seconds each time).
        backoff: First wait between attempts, in seconds.
        timeout: Seconds to wait for a connection or for the next chunk of data.

    Returns:
        Where the data is and a digest of it.

    Raises:
        KfopsError: Unsupported URL, unreachable after retries, not found, too large, empty, or an HTML page.
    """
    parsed = urlparse(url)
    scheme = parsed.scheme or "file"
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".partial")
    origin = url
    if scheme in ("http", "https"):
        _with_retries(url, retries, backoff, lambda: _fetch_http(url, partial, max_bytes, timeout))
    elif scheme == "s3":
        _with_retries(url, retries, backoff, lambda: _fetch_s3(url, partial, max_bytes, timeout))
    elif scheme == "file":
        _fetch_file(Path(unquote(parsed.path)) if parsed.scheme else Path(url), partial, max_bytes)
    elif scheme == "package":
        path, origin = _resolve_package(url)
        _fetch_file(path, partial, max_bytes)
    else:
        raise KfopsError(f"unsupported URL scheme {scheme!r} in {url!r}",
                         "use an http, https, s3, file or package URL")
    try:
        size, digest = _check_content(url, partial)
    except KfopsError:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(dest)
    return FetchResult(path=dest, size=size, sha256=digest, origin=origin)


def _with_retries(url: str, retries: int, backoff: float, attempt: Callable[[], T]) -> T:
    for number in range(retries + 1):
        try:
            return attempt()
        except _Transient as error:
            if number == retries:
                fix = ("check the object store (locally: `kfops local status`), then run again" if url.startswith("s3:")
                       else "check the URL and your network, then run again; without network, fetch the file once "
                            "and run with --dataset-url file:///path/to/it (the pipeline parameter dataset_url)")
                raise KfopsError(f"could not download {url} after {retries + 1} attempts ({error})", fix) from error
            time.sleep(backoff * 2**number)
    raise AssertionError("unreachable")


def _fetch_http(url: str, partial: Path, max_bytes: int, timeout: float) -> None:
    import requests

    try:
        with requests.get(url, stream=True, timeout=timeout, headers={"User-Agent": "kfops-ingest"}) as response:
            if response.status_code == 429 or response.status_code >= 500:
                raise _Transient(f"HTTP {response.status_code} {response.reason}")
            if response.status_code >= 400:
                raise KfopsError(f"{url} answered HTTP {response.status_code} {response.reason}",
                                 "check the dataset URL (a 404 means the file is not there)")
            content_type = response.headers.get("Content-Type", "").lower()
            if "text/html" in content_type:
                raise _html_error(url, f"the server says Content-Type: {content_type}")
            declared = int(response.headers.get("Content-Length") or 0)
            if declared > max_bytes:
                raise _too_large(url, declared, max_bytes)
            _write_capped(url, response.iter_content(_CHUNK), partial, max_bytes)
    except requests.exceptions.RequestException as error:
        raise _Transient(f"{type(error).__name__}: {error}") from error


def _fetch_s3(url: str, partial: Path, max_bytes: int, timeout: float) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, key = parse_s3_uri(url)
    client = s3_client(connect_timeout=timeout, attempts=1)
    try:
        head = client.head_object(Bucket=bucket, Key=key)
        if head["ContentLength"] > max_bytes:
            raise _too_large(url, head["ContentLength"], max_bytes)
        body = client.get_object(Bucket=bucket, Key=key)["Body"]
        _write_capped(url, iter(lambda: body.read(_CHUNK), b""), partial, max_bytes)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code in ("404", "NoSuchKey", "NoSuchBucket", "NotFound"):
            raise KfopsError(f"{url} does not exist", "check the bucket and key") from error
        if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            raise KfopsError(f"access to {url} denied ({code})",
                             "check the S3 credentials in the environment") from error
        raise _Transient(describe_endpoint_error(error)) from error
    except BotoCoreError as error:
        raise _Transient(describe_endpoint_error(error)) from error


def _fetch_file(path: Path, partial: Path, max_bytes: int) -> None:
    if not path.is_file():
        raise KfopsError(f"file {path} does not exist", "check the path (file URLs need an absolute path)")
    size = path.stat().st_size
    if size > max_bytes:
        raise _too_large(path.as_uri(), size, max_bytes)
    shutil.copyfile(path, partial)


def _resolve_package(url: str) -> tuple[Path, str]:
    """The file a ``package://`` URL names in this environment, and ``"<distribution> <version>: <file>"``."""
    import importlib.resources
    from importlib import metadata

    parsed = urlparse(url)
    module, resource = parsed.netloc, unquote(parsed.path).strip("/")
    if not module or not resource:
        raise KfopsError(f"{url} names no file",
                         "write package://<importable package>/<path inside it>, "
                         "e.g. package://sklearn.datasets/data/iris.csv")
    top = module.split(".")[0]
    try:
        root = importlib.resources.files(module)
    except ModuleNotFoundError as error:
        raise KfopsError(f"package {top!r} of {url} is not installed",
                         "install it where the ingest step runs, or give the dataset's http, s3 or file URL") from error
    distributions = metadata.packages_distributions().get(top) or [top]
    try:
        shipped_by = f"{distributions[0]} {metadata.version(distributions[0])}"
    except metadata.PackageNotFoundError:
        shipped_by = top
    path = Path(str(root.joinpath(resource)))
    if not path.is_file():
        raise KfopsError(f"{url}: {shipped_by} has no file {resource}",
                         "check the path inside the package (it may differ in this version of the package)")
    return path, f"{shipped_by}: {path}"


def _write_capped(url: str, chunks: Iterator[bytes], partial: Path, max_bytes: int) -> None:
    written = 0
    with partial.open("wb") as handle:
        for chunk in chunks:
            written += len(chunk)
            if written > max_bytes:
                handle.close()
                partial.unlink(missing_ok=True)
                raise _too_large(url, written, max_bytes)
            handle.write(chunk)


def _check_content(url: str, path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    head = b""
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            head = head or chunk
            digest.update(chunk)
            size += len(chunk)
    if size == 0:
        raise KfopsError(f"{url} is empty (0 bytes)", "check that the URL points at the dataset file")
    if head.lstrip()[:64].lower().startswith(_HTML_MARKERS):
        raise _html_error(url, "the content is an HTML page")
    return size, digest.hexdigest()


def _html_error(url: str, why: str) -> KfopsError:
    return KfopsError(f"{url} returned an HTML page instead of data ({why})",
                      "use the direct download URL of the file, not the page that links to it")


def _too_large(url: str, size: int, max_bytes: int) -> KfopsError:
    return KfopsError(f"{url} is {size / 1e6:.1f} MB, over the {max_bytes / 1e6:.0f} MB limit",
                      "raise the ingest size limit (max_bytes) if this dataset really is that large")
