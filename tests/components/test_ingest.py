from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest

from components.ingest import fetch
from infra.local.processes import free_port
from kfops.base.errors import KfopsError
from tests.datasets import WINE_CSV

pytestmark = pytest.mark.unit


def test_file_url_of_the_bundled_dataset(tmp_path: Path) -> None:
    result = fetch(WINE_CSV.as_uri(), tmp_path / "raw.csv")
    assert result.size == WINE_CSV.stat().st_size
    assert result.sha256 == hashlib.sha256(WINE_CSV.read_bytes()).hexdigest()
    assert (tmp_path / "raw.csv").read_bytes() == WINE_CSV.read_bytes()


def test_package_url_reads_the_copy_an_installed_package_ships(tmp_path: Path) -> None:
    from importlib.metadata import version

    import sklearn

    shipped = Path(sklearn.__file__).parent / "datasets" / "data" / "iris.csv"
    result = fetch("package://sklearn.datasets/data/iris.csv", tmp_path / "raw.csv")
    assert (tmp_path / "raw.csv").read_bytes() == shipped.read_bytes()
    assert result.size == shipped.stat().st_size
    # Where the bytes really came from: the distribution, its version and the file.
    assert result.origin == f"scikit-learn {version('scikit-learn')}: {shipped}"


def test_an_unreachable_server_says_how_to_run_from_a_local_copy(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/KDDCup09_churn.arff"
    with pytest.raises(KfopsError, match="after 1 attempts") as raised:
        fetch(url, tmp_path / "raw", retries=0, timeout=5)
    assert "--dataset-url file:///" in raised.value.fix


def test_http_download(tmp_path: Path, http_files: tuple[Path, str]) -> None:
    root, base = http_files
    (root / "wine.csv").write_bytes(WINE_CSV.read_bytes())
    result = fetch(f"{base}/wine.csv", tmp_path / "raw.csv")
    assert result.size == WINE_CSV.stat().st_size


def _serve(name: str, content: bytes) -> Callable[[Path, str], str]:
    def make(root: Path, base: str) -> str:
        (root / name).write_bytes(content)
        return f"{base}/{name}"
    return make


BAD_URLS: list[tuple[str, Callable[[Path, str], str], dict[str, int], str]] = [
    ("404", lambda root, base: f"{base}/missing.csv", {}, r"answered HTTP 404"),
    ("html content type", _serve("page.html", b"<p>sign in</p>"), {}, r"HTML page instead of data"),
    ("html body", _serve("data.csv", b"\n  <!DOCTYPE html><html><body>Login</body></html>"), {},
     r"HTML page instead of data"),
    ("empty", _serve("empty.csv", b""), {}, r"is empty"),
    ("unreachable", lambda root, base: f"http://127.0.0.1:{free_port()}/x.csv", {}, r"after 2 attempts"),
    ("too large", _serve("big.csv", b"a;b\n" * 1000), {"max_bytes": 100}, r"over the"),
    ("missing file", lambda root, base: (root / "nope.csv").as_uri(), {}, r"does not exist"),
    ("unsupported scheme", lambda root, base: "ftp://example.org/x.csv", {}, r"unsupported URL scheme 'ftp'"),
    ("package not installed", lambda root, base: "package://no_such_package_kfops/data/x.csv", {},
     r"package 'no_such_package_kfops' of package://no_such_package_kfops/data/x.csv is not installed"),
    ("file not in the package", lambda root, base: "package://sklearn.datasets/data/nope.csv", {},
     r"package://sklearn.datasets/data/nope.csv: scikit-learn [0-9.]+ has no file data/nope.csv"),
    ("package URL without a file", lambda root, base: "package://sklearn.datasets", {},
     r"package://sklearn.datasets names no file"),
]


@pytest.mark.parametrize(("case", "make_url", "options", "expected"), BAD_URLS, ids=[c[0] for c in BAD_URLS])
def test_bad_urls_fail_clearly_and_leave_nothing(tmp_path: Path, http_files: tuple[Path, str], case: str,
                                                 make_url: Callable[[Path, str], str], options: dict[str, int],
                                                 expected: str) -> None:
    url = make_url(*http_files)
    dest = tmp_path / "raw"
    with pytest.raises(KfopsError, match=expected) as raised:
        fetch(url, dest, retries=1, backoff=0.01, timeout=5, **options)
    assert raised.value.step == "ingest"
    assert raised.value.fix
    assert not list(tmp_path.iterdir()), f"{case}: a failed download must leave no file behind"
