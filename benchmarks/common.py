"""What every serving benchmark needs: a private local platform with the wine model served, and Locust runs.

Everything runs on free ports in a temp state dir, so a benchmark never collides with a running ``make demo``.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from kfops.base.paths import REPO_ROOT

BIN = Path(sys.executable).parent
RESULTS = REPO_ROOT / "benchmarks" / "results"


@dataclasses.dataclass(frozen=True)
class Served:
    """The benchmark model as kfops serves it."""

    workdir: Path
    platform: Any  # infra.local.platform.LocalPlatform
    model_name: str
    model_dir: str
    endpoints: dict[str, str]

    def host(self, protocol: str) -> str:
        """Locust's ``--host`` for the endpoint ``protocol`` (``v2``, ``v1`` or ``v2-grpc``)."""
        from loadtest.command import endpoint_host

        return endpoint_host(protocol, self.endpoints[protocol])


@contextlib.contextmanager
def served_wine_model(model_name: str = "bench-wine") -> Iterator[Served]:
    """Start a private local platform, train and register the wine model, serve it on both protocols; stop it all."""
    from components.clean import clean_file
    from components.store import store_dataset
    from infra.local.platform import LocalPlatform
    from infra.local.processes import free_port
    from infra.local.serving import LocalServing
    from infra.local.settings import LocalSettings
    from kfops.base.recipes import WINE_QUALITY
    from trainer.train import train_and_register

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        settings = LocalSettings(state_dir=workdir / "state", s3_port=free_port(), mlflow_port=free_port(),
                                 mlserver_port=free_port(), seldon_port=free_port())
        local = LocalPlatform(settings)
        progress("starting a private local platform")
        local.up()
        try:
            os.environ.update(local.env())
            cleaned = workdir / "wine.parquet"
            clean_file(REPO_ROOT / "data" / "winequality-red.csv", WINE_QUALITY, cleaned)
            dataset = store_dataset(cleaned, "datasets", "benchmark")
            progress("training and registering the wine model")
            model = train_and_register(WINE_QUALITY, dataset, {"alpha": "0.0005", "l1_ratio": "0.5"},
                                       model_name=model_name, experiment="benchmark")
            serving = LocalServing(local)
            served = serving.fetch(model.name, model.version)
            progress("serving it on both protocols")
            endpoints = serving.deploy(served)
            yield Served(workdir, local, model.name, served.path, endpoints)
        finally:
            local.down()


def progress(message: str) -> None:
    """One progress line on stderr, timestamped."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def locust(user: str, host: str, users: int, seconds: int, prefix: Path, model: str,
           extra: Sequence[str] = ()) -> dict[str, Any]:
    """One headless Locust run of ``loadtest/locustfile.py``; its aggregated figures (good requests only when
    malformed ones are mixed in). Locust's CSVs, HTML report and output are left at ``prefix``.

    Raises:
        RuntimeError: Locust recorded no request at all (nothing was measured).
    """
    from loadtest.command import locust_command

    with open(f"{prefix}.log", "w") as log:
        result = subprocess.run(
            locust_command(user, host, users, seconds, "--csv", str(prefix), "--html", f"{prefix}.html", *extra),
            env={**os.environ, "KFOPS_MODEL_NAME": model}, cwd=prefix.parent, stdout=log, stderr=subprocess.STDOUT,
            timeout=seconds + 120, check=False)
    with open(f"{prefix}_stats.csv") as handle:
        rows = {row["Name"]: row for row in csv.DictReader(handle)}
    good = next((row for name, row in rows.items() if name not in ("Aggregated",) and "(malformed)" not in name),
                None)
    if good is None:
        raise RuntimeError(f"Locust ({user} against {host}) recorded no request in {seconds} s (exit code "
                           f"{result.returncode}): its output is in {prefix}.log")
    malformed = next((row for name, row in rows.items() if "(malformed)" in name), None)
    return {"requests": int(good["Request Count"]), "failures": int(good["Failure Count"]),
            "rps": float(good["Requests/s"]), "p50_ms": float(good["50%"]), "p95_ms": float(good["95%"]),
            "p99_ms": float(good["99%"]),
            "malformed_requests": int(malformed["Request Count"]) if malformed else 0,
            "malformed_not_4xx": int(malformed["Failure Count"]) if malformed else 0,
            "locust_exit_code": result.returncode}


def group_rss(pid: int) -> int:
    """Resident memory (bytes) of every process in the process group led by ``pid``."""
    import psutil

    total = 0
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if os.getpgid(proc.pid) == pid:
                total += proc.memory_info().rss
    return total


def print_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """Print a Markdown table, as benchmarks/README.md shows the figures."""
    print(f"| {' | '.join(header)} |")
    print(f"|{' --- |' * len(header)}")
    for row in rows:
        print(f"| {' | '.join(str(cell) for cell in row)} |")


def output_dir(name: str) -> Path:
    """A fresh ``benchmarks/results/<name>-<time>/`` for one run's JSON, plot and raw reports."""
    out = RESULTS / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)
    return out


def bar_chart(rows: dict[str, float], *, title: str, unit: str, path: Path,
              highlight: Sequence[str] = ()) -> None:
    """A horizontal bar chart of ``rows`` (label -> value), the ``highlight`` labels in red, saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(rows)
    figure, axis = plt.subplots(figsize=(10, 0.5 * len(labels) + 1.4))
    axis.barh(labels, [rows[label] for label in labels],
              color=["#d33" if label in highlight else "#2a6fb0" for label in labels])
    axis.invert_yaxis()
    for index, label in enumerate(labels):
        axis.annotate(f"{rows[label]:.3g} {unit}", (rows[label], index), xytext=(3, -3), textcoords="offset points",
                      fontsize=8)
    axis.set(title=title, xlabel=unit)
    figure.tight_layout()
    figure.savefig(path, dpi=100)


FIGURES = REPO_ROOT / "benchmarks" / "figures"


def publish(out: Path, name: str) -> None:
    """Make this run's ``<name>.json`` and ``<name>.png`` the figures ``benchmarks/README.md`` shows."""
    import shutil

    FIGURES.mkdir(exist_ok=True)
    for suffix in (".json", ".png"):
        shutil.copyfile(out / f"{name}{suffix}", FIGURES / f"{name}{suffix}")
    progress(f"published {FIGURES / name}.json and .png")
