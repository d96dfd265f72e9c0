"""The pinned upstream data itself: every file is the one of its tag, and a checkout without ``../shared`` gets the
same files at the same tags, checked against the checksums kept in this repository."""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.upstream import data

pytestmark = pytest.mark.unit

RAW_FILE = "kubeflow/katib/v0.19.0/manifests/v1beta1/components/webhook/webhooks.yaml"
#: The verified copy this checkout has (read before a test takes local data away).
LOCAL = data.path(RAW_FILE)


def test_every_listed_file_is_the_one_of_its_tag() -> None:
    for relative in data.checksums():
        assert data.path(relative).is_file()


def test_a_file_outside_the_list_is_refused_with_the_fix() -> None:
    with pytest.raises(data.UpstreamDataError, match="not in tests/upstream/SHA256SUMS"):
        data.path("kubeflow/pipelines/2.17.3/manifests/kustomize/env/platform-agnostic/kustomization.yaml")


@pytest.fixture
def github(tmp_path: Path) -> Iterator[Path]:
    """A stand-in for raw.githubusercontent.com over real HTTP, serving a directory in its layout
    (``owner/repo/tag/path``), which is also the data's layout."""
    root = tmp_path / "raw"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    root.joinpath(".url").write_text(f"http://127.0.0.1:{server.server_address[1]}")
    try:
        yield root
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def no_local_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, github: Path) -> Path:
    """A checkout without ``../shared``: an empty data dir, an empty cache, raw files from ``github``."""
    monkeypatch.setenv("KFOPS_UPSTREAM_DIR", str(tmp_path / "absent"))
    monkeypatch.setenv("KFOPS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("KFOPS_UPSTREAM_RAW_URL", github.joinpath(".url").read_text())
    return github


def publish(github: Path, relative: str, content: bytes) -> None:
    target = github / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(content)


def test_without_local_data_a_file_is_fetched_at_its_tag_and_checked(no_local_data: Path, tmp_path: Path) -> None:
    original = LOCAL.read_bytes()
    publish(no_local_data, RAW_FILE, original)
    fetched = data.path(RAW_FILE)
    assert fetched.is_relative_to(tmp_path / "cache")
    assert fetched.read_bytes() == original
    shutil.rmtree(no_local_data / "kubeflow")  # cached: no second download
    assert data.path(RAW_FILE).read_bytes() == original


def test_a_fetched_file_that_is_not_the_tags_is_refused_and_not_kept(no_local_data: Path, tmp_path: Path) -> None:
    publish(no_local_data, RAW_FILE, b"apiVersion: v1\nkind: List\nitems: []\n")
    with pytest.raises(data.UpstreamDataError, match="expected"):
        data.path(RAW_FILE)
    assert not any(path.is_file() for path in (tmp_path / "cache").rglob("*"))


def test_a_file_nowhere_to_be_found_names_where_to_put_it(no_local_data: Path) -> None:
    with pytest.raises(data.UpstreamDataError, match="KFOPS_UPSTREAM_DIR"):
        data.path(RAW_FILE)


def test_a_changed_local_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    changed = tmp_path / "upstream" / RAW_FILE
    changed.parent.mkdir(parents=True)
    changed.write_text(LOCAL.read_text() + "# edited\n")
    monkeypatch.setenv("KFOPS_UPSTREAM_DIR", str(tmp_path / "upstream"))
    with pytest.raises(data.UpstreamDataError, match="not the file of the pinned tag"):
        data.path(RAW_FILE)
