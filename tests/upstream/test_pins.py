"""Every pinned version is the version its upstream facts were read at, and the facts are complete.

Bumping a pin (a package in pyproject.toml, the Seldon extra of the serving distribution, a chart or a manifest tag)
without re-reading upstream at the new version and updating the facts module fails here.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from kfops.base.paths import REPO_ROOT
from kfops.base.seldon_versions import DEFAULT_SELDON_CORE_VERSION
from kfops.base.upstream import Fact, Grant, Service, Source, cert_manager, katib, kfp, kubeflow, mlserver, seldon

pytestmark = pytest.mark.unit

MODULES = (kfp, katib, seldon, kubeflow, cert_manager, mlserver)


def pins(path: Path, *groups: str) -> dict[str, str]:
    """``name -> version`` of the ``==`` pins of a pyproject's dependencies and the named extras."""
    project = tomllib.loads(path.read_text())["project"]
    requirements = [*project.get("dependencies", [])]
    for group in groups:
        requirements += project["optional-dependencies"][group]
    found = {}
    for requirement in requirements:
        match = re.match(r"^([A-Za-z0-9_.-]+)==([^;\s]+)", requirement)
        if match:
            found[match.group(1).lower()] = match.group(2)
    return found


def test_the_workflows_sdk_is_the_kfp_release_whose_manifests_were_read() -> None:
    project = pins(REPO_ROOT / "pyproject.toml")
    assert project["kfp"] == kfp.SDK_VERSION
    assert project["kfp-kubernetes"] == kfp.SDK_VERSION
    assert kfp.SDK_VERSION == kfp.VERSION


def test_the_katib_api_models_are_the_katib_release_whose_webhook_was_read() -> None:
    assert "v" + pins(REPO_ROOT / "pyproject.toml")["kubeflow-katib-api"] == katib.VERSION


def test_the_serving_runtimes_are_the_releases_whose_behaviour_was_read() -> None:
    serving = pins(REPO_ROOT / "serving" / "pyproject.toml", "mlserver", "seldon")
    assert serving["mlserver"] == mlserver.VERSION
    assert serving["seldon-core"] == seldon.VERSION
    assert DEFAULT_SELDON_CORE_VERSION == seldon.VERSION


def test_the_seldon_default_is_the_last_apache_release() -> None:
    assert tuple(int(part) for part in seldon.VERSION.split(".")) == seldon.LAST_APACHE_RELEASE.value
    serving = pins(REPO_ROOT / "serving" / "pyproject.toml", "seldon-bsl")
    assert tuple(int(part) for part in serving["seldon-core"].split(".")) > seldon.LAST_APACHE_RELEASE.value


def test_the_local_tuning_libraries_are_the_ones_the_differences_name() -> None:
    from infra.local.katib.suggest import DIFFERENCES

    local = pins(REPO_ROOT / "pyproject.toml", "local")
    assert local["hyperopt"] in DIFFERENCES["tpe"]
    assert local["scikit-optimize"] in DIFFERENCES["bayesianoptimization"]
    assert f"optuna {local['optuna'].split('.')[0]}" in DIFFERENCES["multivariate-tpe"]


@pytest.mark.parametrize("module", MODULES, ids=lambda module: module.__name__.rsplit(".", 1)[-1])
def test_every_fact_names_its_source_at_the_modules_version(module: object) -> None:
    version = str(module.VERSION)  # type: ignore[attr-defined]
    facts = {name: value for name, value in vars(module).items() if isinstance(value, Fact | Service | Grant)}
    facts.update({f"{name}[{index}]": grant for name, value in vars(module).items() if isinstance(value, tuple)
                  for index, grant in enumerate(value) if isinstance(grant, Grant)})
    if module is katib:
        facts.update({f"ALGORITHMS[{name}]": algorithm for name, algorithm in katib.ALGORITHMS.items()})
    assert facts, "a facts module without facts"
    for name, fact in facts.items():
        source: Source = fact.source
        assert source.repo == module.REPO, name  # type: ignore[attr-defined]
        assert source.path, name
        assert not source.path.startswith("/"), name
        # Seldon's one exception: the licence change is read at the first BSL release.
        if not (module is seldon and name == "LAST_APACHE_RELEASE"):
            assert source.ref.lstrip("v") == version.lstrip("v"), (name, source.ref)
        assert re.fullmatch(r"(\d+(-\d+)?(,\d+(-\d+)?)*)?", source.lines), (name, source.lines)
