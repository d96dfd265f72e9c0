"""One served champion for every serving test: a platform, two registered versions, the first one deployed.

Package-scoped: starting a platform and both runtimes is the slow part, and the tests that change what is served
(rolling, down and up) leave the first version served again.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from components.store import store_dataset
from infra.local.platform import LocalPlatform
from infra.local.serving import LocalServing
from kfops.base.recipes import WINE_QUALITY
from tests.conftest import started_platform
from tests.datasets import cleaned_wine
from trainer.train import train_and_register

NAME = "served-wine"


@pytest.fixture(scope="package")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPlatform]:
    # Two workers keep start-up quick in CI; the default (3) is what the benchmark measured best.
    # A short v1 read timeout: the stalled-client tests wait for it (4 s instead of 30).
    yield from started_platform(tmp_path_factory, seldon_workers=2, seldon_read_timeout=4.0)


@pytest.fixture(scope="package")
def versions(platform: LocalPlatform, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Two registered versions with clearly different predictions, and the dataset they were trained on."""
    dataset = store_dataset(cleaned_wine(tmp_path_factory.mktemp("data")), "datasets", "tests/serving")
    first = train_and_register(WINE_QUALITY, dataset, {"alpha": "0.0005", "l1_ratio": "0.5"}, model_name=NAME,
                               experiment="serving-tests")
    second = train_and_register(WINE_QUALITY, dataset, {"alpha": "0.5", "l1_ratio": "0.5"}, model_name=NAME,
                                experiment="serving-tests")
    return {"first": first.version, "second": second.version, "dataset": dataset}


@pytest.fixture(scope="package")
def serving(platform: LocalPlatform, versions: dict[str, str]) -> LocalServing:
    local = LocalServing(platform)
    local.deploy(local.fetch(NAME, versions["first"]))
    return local
