"""Can this serving runtime load this model? Checked before anything is deployed.

The Kubeflow + MLflow + Seldon tutorial kfops replaces deployed models that the prepackaged MLflow server image
could not load (saved with a newer MLflow, another scikit-learn, another Python), and found out from a crash-looping
pod. Here the model's own record (``MLmodel``) is compared with what the runtime has installed, and a mismatch is a
clear refusal that names it.

A runtime is described by the versions it really has: for a local runtime, queried from its Python environment;
for a cluster image, read from the pins the image is built from (``pyproject.toml``).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

#: Distributions whose versions decide whether a model loads.
PACKAGES = ("mlflow-skinny", "mlflow", "scikit-learn", "skops", "cloudpickle", "numpy", "pandas")
#: The pyfunc loader module each flavor needs, and the distribution that provides its library.
FLAVOR_PACKAGES = {"mlflow.sklearn": "scikit-learn"}


@dataclass(frozen=True)
class RuntimeEnvironment:
    """What a serving runtime has installed.

    Attributes:
        name: Runtime name for messages (``mlserver``, ``seldon-v1``...).
        python: ``major.minor`` of its Python.
        packages: Distribution name (lower-case) -> version.
    """

    name: str
    python: str
    packages: dict[str, str] = field(default_factory=dict)

    @property
    def mlflow(self) -> str | None:
        """Its MLflow version (full or skinny distribution)."""
        return self.packages.get("mlflow") or self.packages.get("mlflow-skinny")

    @classmethod
    def current(cls, name: str) -> RuntimeEnvironment:
        """This Python process's environment."""
        packages = {}
        for package in PACKAGES:
            try:
                packages[package] = metadata.version(package)
            except metadata.PackageNotFoundError:
                continue
        return cls(name, f"{sys.version_info.major}.{sys.version_info.minor}", packages)

    @classmethod
    def of_interpreter(cls, name: str, python: Path) -> RuntimeEnvironment:
        """The environment of another Python interpreter (e.g. the seldon-core venv), by asking it.

        Raises:
            RuntimeError: The interpreter cannot be run.
        """
        probe = ("import json, sys\nfrom importlib import metadata\nout = {}\n"
                 f"for p in {list(PACKAGES)!r}:\n    try: out[p] = metadata.version(p)\n"
                 "    except metadata.PackageNotFoundError: pass\n"
                 "print(json.dumps({'python': f'{sys.version_info.major}.{sys.version_info.minor}', 'packages': out}))")
        try:
            answer = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, check=True, timeout=60)
        except (OSError, subprocess.SubprocessError) as error:
            raise RuntimeError(f"cannot query the Python environment at {python}: {error}") from error
        data = json.loads(answer.stdout)
        return cls(name, data["python"], data["packages"])

    @classmethod
    def from_pins(cls, name: str, python: str, requirements: Iterable[str]) -> RuntimeEnvironment:
        """A runtime built from exact pins (``name==version`` lines; others are ignored)."""
        packages = {}
        for line in requirements:
            match = re.match(r"^\s*([A-Za-z0-9_.-]+)\s*==\s*([^\s;#]+)", line)
            if match:
                packages[match.group(1).lower()] = match.group(2)
        return cls(name, python, packages)


@dataclass(frozen=True)
class ModelRecord:
    """What a saved MLflow model says about itself (its ``MLmodel`` file)."""

    path: Path
    mlflow_version: str | None
    flavors: dict[str, Any]

    @classmethod
    def read(cls, model_dir: Path) -> ModelRecord:
        """Read ``MLmodel`` in ``model_dir``.

        Raises:
            FileNotFoundError: Not an MLflow model directory.
        """
        document = yaml.safe_load((model_dir / "MLmodel").read_text())
        return cls(model_dir, document.get("mlflow_version"), document.get("flavors") or {})

    @property
    def python(self) -> str | None:
        """``major.minor`` of the Python the model was saved with."""
        version = (self.flavors.get("python_function") or {}).get("python_version")
        return ".".join(str(version).split(".")[:2]) if version else None


def _minor(version: str | None) -> tuple[int, ...]:
    numbers = re.findall(r"\d+", version or "")[:2]
    return tuple(int(n) for n in numbers)


def problems(model: ModelRecord, runtime: RuntimeEnvironment) -> list[str]:
    """Every reason ``runtime`` cannot be trusted to load and serve ``model`` (empty: compatible)."""
    found = []
    pyfunc = model.flavors.get("python_function")
    if not pyfunc:
        return [f"the model has no python_function flavor (flavors: {', '.join(model.flavors) or 'none'}), so "
                "neither MLServer's MLflow runtime nor the seldon wrapper can load it"]
    if runtime.mlflow is None:
        found.append(f"{runtime.name} has no MLflow installed")
    elif _minor(model.mlflow_version) > _minor(runtime.mlflow):
        found.append(f"the model was saved with MLflow {model.mlflow_version}, {runtime.name} has MLflow "
                     f"{runtime.mlflow} (an older MLflow cannot read what a newer one wrote)")
    loader = pyfunc.get("loader_module", "")
    needed = FLAVOR_PACKAGES.get(loader)
    if needed and needed not in runtime.packages:
        found.append(f"the model needs {needed} ({loader}), which {runtime.name} does not have")
    sklearn = model.flavors.get("sklearn")
    if sklearn and "scikit-learn" in runtime.packages:
        saved, have = sklearn.get("sklearn_version"), runtime.packages["scikit-learn"]
        if _minor(saved) != _minor(have):
            found.append(f"the model was saved with scikit-learn {saved}, {runtime.name} has {have} (scikit-learn "
                         "does not load models across minor versions)")
        serialization = sklearn.get("serialization_format", "cloudpickle")
        if serialization == "skops" and "skops" not in runtime.packages:
            found.append(f"the model is serialized with skops, which {runtime.name} does not have")
        if serialization in ("pickle", "cloudpickle") and model.python and model.python != runtime.python:
            found.append(f"the model is a {serialization} from Python {model.python}, {runtime.name} runs Python "
                         f"{runtime.python} (pickles do not cross Python versions safely; save with skops)")
    return found
