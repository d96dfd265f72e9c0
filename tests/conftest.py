"""Fixtures shared by every test: isolated local-platform settings and a running platform."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from infra.local.platform import LocalPlatform
from infra.local.processes import free_port
from infra.local.settings import LocalSettings

if TYPE_CHECKING:
    from tests.kind.harness import KindEnvironment

#: Why kind tests cannot run on a machine like this one.
KIND_SKIP_REASON = ("needs a kind cluster with Kubeflow, Katib and Seldon installed by `pulumi up --stack kind`; "
                    "runs in the nightly CI (`pytest -m 'e2e or kind' --target kind`). This machine has no Docker "
                    "engine, so no kind cluster: the same assertions run here on the local target")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--target", choices=("local", "kind"), default="local",
                     help="where e2e tests run the workflow: the embedded local platform, or a kind cluster")


#: Order in which test files are handed to the workers: whole-workflow files first, then files that start services,
#: then the rest. ``make test`` hands out one file at a time (``--dist loadfile --no-loadscope-reorder``); started
#: last, a 30 s e2e file would run alone on one core at the end while the other core has nothing left to do.
_FILE_ORDER = ("e2e", "integration")


def _file_rank(items: list[pytest.Item]) -> int:
    """Where a file's tests go in the run: the rank of the slowest kind of test it holds."""
    kinds = {marker.name for item in items for marker in item.iter_markers() if marker.name in _FILE_ORDER}
    return min((_FILE_ORDER.index(kind) for kind in kinds), default=len(_FILE_ORDER))


def _slowest_files_first(items: list[pytest.Item]) -> None:
    by_file: dict[str, list[pytest.Item]] = {}
    for item in items:
        by_file.setdefault(item.nodeid.split("::")[0], []).append(item)
    # A stable sort: files of one rank, and the tests inside a file, keep their collection order.
    items[:] = [item for tests in sorted(by_file.values(), key=_file_rank) for item in tests]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    _slowest_files_first(items)
    if config.getoption("--target") == "kind":
        return
    skip = pytest.mark.skip(reason=KIND_SKIP_REASON)
    for item in items:
        if item.get_closest_marker("kind"):  # not `keywords`: that also holds parametrize ids such as "kind"
            item.add_marker(skip)


@pytest.fixture(scope="session")
def kind_env(request: pytest.FixtureRequest) -> Iterator[KindEnvironment]:
    """The nightly job's cluster (``--target kind``): kind, both images, ``pulumi up``, port-forwards; torn down at
    the end of the session, with forensics in ``KFOPS_FORENSICS_DIR`` (default ``kind-forensics/``) if a test
    failed. The tests' environment then points at the cluster's services."""
    from tests.kind.harness import kind_environment

    if request.config.getoption("--target") != "kind":
        pytest.fail("kind_env needs --target kind")
    forensics = Path(os.environ.get("KFOPS_FORENSICS_DIR", "kind-forensics")).resolve()
    with kind_environment(forensics, failed=lambda: request.session.testsfailed > 0) as environment, \
            pytest.MonkeyPatch.context() as patch:
        for name, value in environment.env().items():
            patch.setenv(name, value)
        yield environment


@pytest.fixture(scope="session")
def target(request: pytest.FixtureRequest) -> str:
    """The e2e target chosen with ``--target``."""
    return str(request.config.getoption("--target"))


#: Environment prefixes a developer's shell may carry that would point tests at the wrong services.
_LEAKY_PREFIXES = ("KFOPS_", "AWS_", "MLFLOW_")
#: Except where the pinned upstream data is (tests/upstream/data.py): it points at files, not at services.
_KEPT = ("KFOPS_UPSTREAM_DIR", "KFOPS_UPSTREAM_RAW_URL")


def new_settings(state_dir: Path, **overrides: object) -> LocalSettings:
    """Settings with free ports in ``state_dir``, so tests never touch a user's platform or each other's."""
    values: dict[str, object] = {
        "state_dir": state_dir,
        "s3_port": free_port(),
        "mlflow_port": free_port(),
        "mlserver_port": free_port(),
        "seldon_port": free_port(),
        "stop_timeout": 3.0,
    }
    values.update(overrides)
    return LocalSettings(**values)  # type: ignore[arg-type]


@pytest.fixture
def make_settings(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., LocalSettings]:
    """Factory of isolated settings, one fresh temp state dir per call."""
    return lambda **overrides: new_settings(tmp_path_factory.mktemp("kfops-state"), **overrides)


@pytest.fixture(scope="session", autouse=True)
def _isolated_env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        # On kind the environment is how tests reach the cluster's port-forwarded services; locally it is noise.
        if request.config.getoption("--target") == "local":
            for name in list(os.environ):
                if name.startswith(_LEAKY_PREFIXES) and name not in _KEPT:
                    patch.delenv(name)
            # The session's own MLflow template cache (the first platform migrates, the others start from it);
            # the user's cache is never read or written.
            patch.setenv("KFOPS_CACHE_DIR", str(tmp_path_factory.mktemp("kfops-cache")))
            # `kfops local up` starts the serving runtimes idle by default; tests start them when they deploy (and
            # on the ports they chose), except tests/serving/test_prestart.py, which tests exactly that.
            patch.setenv("KFOPS_PRESTART_SERVING", "false")
        yield


def _forget_cached_credentials() -> None:
    # boto3's default session resolves credentials from the environment once and keeps them; MLflow's S3 client
    # uses that session. Tests switch between platforms with different keys inside one process, users never do.
    import boto3

    boto3.DEFAULT_SESSION = None


def started_platform(tmp_path_factory: pytest.TempPathFactory, state_dir: Path | None = None,
                     **overrides: object) -> Iterator[LocalPlatform]:
    """Start a platform in its own state dir (a new temp dir unless given), export its env to this process, stop it
    afterwards."""
    yield from started_platform_in(state_dir or tmp_path_factory.mktemp("kfops-platform"), **overrides)


def started_platform_in(state_dir: Path, **overrides: object) -> Iterator[LocalPlatform]:
    """Start a platform in ``state_dir`` (free ports), export its env to this process, stop it afterwards."""
    platform = LocalPlatform(new_settings(state_dir, **overrides))
    try:
        platform.up()
        with pytest.MonkeyPatch.context() as patch:
            for name, value in platform.env().items():
                patch.setenv(name, value)
            _forget_cached_credentials()
            yield platform
        _forget_cached_credentials()
    finally:
        platform.down()


@pytest.fixture(scope="session")
def local_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPlatform]:
    """One real platform (SeaweedFS + MLflow) shared by the tests that only use it, never stop or restart it."""
    # Two wrapper workers instead of the default three: every start and roll of the wrapper loads the model in each
    # worker, and the e2e suites start and roll it many times on 2 cores.
    yield from started_platform(tmp_path_factory, seldon_workers=2)


@contextlib.contextmanager
def tmpfs(mount_point: Path, size: str) -> Iterator[Path]:
    """A real, size-limited file system (tmpfs) mounted at ``mount_point`` while the block runs.

    Full-disk behaviour needs a disk that really fills: mounting one needs root (CI runs the tests as root). Skips
    the test where mounting is impossible.
    """
    mount_point.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "kfops-test", str(mount_point)],
                             capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to fill (needs root): {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        # Lazy: a process that still has a file open there must not keep the mount alive.
        subprocess.run(["umount", "--lazy", str(mount_point)], check=True)


def fill(path: Path, leave: int = 0) -> Path:
    """Fill the file system of ``path`` up to ``leave`` free bytes with one file; the file (delete it to undo).

    Services write there meanwhile: the file grows until the space left is ``leave`` (or none at all).
    """
    import errno

    filler = path / ".filler"
    with filler.open("ab") as handle:
        for _ in range(100):
            missing = shutil.disk_usage(path).free - leave
            if missing <= 0:
                break
            try:
                os.posix_fallocate(handle.fileno(), os.fstat(handle.fileno()).st_size, missing)
            except OSError as error:
                if error.errno != errno.ENOSPC:
                    raise
    return filler


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository checkout under test."""
    return Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def http_directory(root: Path) -> Iterator[str]:
    """Serve ``root`` over real HTTP with the standard library's static file server; yields the base URL."""
    import functools
    import http.server
    import threading

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def http_files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A directory served over real HTTP by the standard library's static file server: ``(directory, base URL)``."""
    root = tmp_path_factory.mktemp("http-root")
    with http_directory(root) as base:
        yield root, base
