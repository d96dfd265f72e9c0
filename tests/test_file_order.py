"""The order in which ``make test`` hands test files to its workers (tests/conftest.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

import pytest

from tests.conftest import _slowest_files_first

pytestmark = pytest.mark.unit


@dataclass
class _Item:
    nodeid: str
    markers: list[str] = field(default_factory=list)

    def iter_markers(self) -> list[Any]:
        return [getattr(pytest.mark, name).mark for name in self.markers]


def test_whole_workflow_files_go_first_then_service_files_then_the_rest_each_file_whole_and_in_order() -> None:
    items = [_Item("tests/a.py::one", ["unit"]), _Item("tests/b.py::one", ["integration"]),
             _Item("tests/a.py::two", ["unit"]), _Item("tests/c.py::one", ["unit"]),
             _Item("tests/c.py::two", ["e2e"]), _Item("tests/b.py::two", ["integration"]),
             _Item("tests/d.py::one", ["integration"])]
    ordered = cast(list[pytest.Item], list(items))
    _slowest_files_first(ordered)
    assert [item.nodeid for item in ordered] == [
        "tests/c.py::one", "tests/c.py::two",  # holds an e2e test: the whole file first, in its own order
        "tests/b.py::one", "tests/b.py::two", "tests/d.py::one",  # integration, in collection order
        "tests/a.py::one", "tests/a.py::two"]
