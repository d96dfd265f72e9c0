from __future__ import annotations

import pytest

from kfops.base.seldon_versions import DEFAULT_SELDON_CORE_VERSION, is_bsl_licensed, license_warning, parse_version

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("version", "bsl"),
    [("1.17.1", False), ("v1.17.1", False), ("1.15.0", False), ("1.17.2", True), ("1.18.0", True),
     ("v1.18.2", True), ("2.8.0", True)],
)
def test_releases_after_1_17_1_are_bsl(version: str, bsl: bool) -> None:
    assert is_bsl_licensed(version) is bsl
    assert (license_warning(version) is not None) is bsl


def test_the_default_is_the_last_apache_release() -> None:
    assert DEFAULT_SELDON_CORE_VERSION == "1.17.1"
    assert not is_bsl_licensed(DEFAULT_SELDON_CORE_VERSION)


def test_warning_names_the_version_and_the_alternative() -> None:
    warning = license_warning("1.18.0") or ""
    assert "1.18.0" in warning
    assert "Business Source License" in warning
    assert DEFAULT_SELDON_CORE_VERSION in warning


@pytest.mark.parametrize("version", ["latest", "1.17", "", "one.two.three"])
def test_non_release_numbers_are_refused(version: str) -> None:
    with pytest.raises(ValueError, match="release number"):
        parse_version(version)
