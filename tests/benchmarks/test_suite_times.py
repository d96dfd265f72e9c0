"""How the test-suite benchmark (benchmarks/suite_times.py) finds `make check`'s command and sums pytest's times."""

from __future__ import annotations

import pytest

from benchmarks.suite_times import assignments, expand, junit_times, recipe, summarize
from kfops.base.paths import REPO_ROOT

pytestmark = pytest.mark.unit

MAKEFILE = """\
BIN := $(VENV)/bin
check: venv ## The fast unit tests only
\t$(BIN)/pytest -m "not integration and not e2e and not kind" -q

test: venv browser ## Every test
\t$(SELDON_VENV)/bin/pytest --rootdir serving serving/tests -q
\t$(BIN)/pytest -m "not kind"
checkout := x
"""


def test_a_recipe_is_the_tab_indented_lines_of_its_rule() -> None:
    assert recipe(MAKEFILE, "check") == ['$(BIN)/pytest -m "not integration and not e2e and not kind" -q']
    assert recipe(MAKEFILE, "test") == ["$(SELDON_VENV)/bin/pytest --rootdir serving serving/tests -q",
                                        '$(BIN)/pytest -m "not kind"']


def test_a_variable_assignment_is_not_a_rule() -> None:
    with pytest.raises(ValueError, match="no rule for 'BIN'"):
        recipe(MAKEFILE, "BIN")


def test_the_projects_makefile_runs_pytest_in_make_check() -> None:
    commands = recipe((REPO_ROOT / "Makefile").read_text(), "check")
    assert any("pytest" in command for command in commands)


def test_the_projects_make_check_expands_with_the_makefiles_own_variables() -> None:
    # It did not: `make check` gained $(PARALLEL) and the benchmark stopped with "not known here".
    makefile = (REPO_ROOT / "Makefile").read_text()
    variables = {**assignments(makefile), "BIN": "/v/bin", "SELDON_VENV": "/s"}
    for line in recipe(makefile, "check"):
        argv = expand(line, variables)
        assert argv[0] == "/v/bin/pytest"
    assert assignments("PARALLEL ?= -n 2 --dist loadfile\nPYTHON ?= $(call find_python,3.11)\n") == \
        {"PARALLEL": "-n 2 --dist loadfile"}


def test_a_recipe_line_becomes_arguments() -> None:
    assert expand('$(BIN)/pytest -m "not kind"', {"BIN": "/v/bin"}) == ["/v/bin/pytest", "-m", "not kind"]


def test_an_unknown_variable_is_an_error_not_an_empty_string() -> None:
    with pytest.raises(ValueError, match=r"\$\(PYTHON\)"):
        expand("$(PYTHON) -m pytest", {"BIN": "/v/bin"})


REPORT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" tests="5">
<testcase classname="tests.kfops.test_cli" name="test_help" time="0.50"/>
<testcase classname="tests.kfops.test_cli.TestRun" name="test_run[a]" time="1.25"><skipped message="x"/></testcase>
<testcase classname="tests.infra.local.test_up" name="test_up" time="3.00"><failure message="boom"/></testcase>
<testcase classname="tests.test_conftest" name="test_marks" time="0.01"/>
<testcase classname="tests.serving.test_x" name="test_error" time=""><error message="setup"/></testcase>
</testsuite></testsuites>
"""


def test_each_case_gets_its_area_time_and_outcome() -> None:
    assert junit_times(REPORT) == [
        {"area": "tests/kfops", "test": "tests.kfops.test_cli::test_help", "seconds": 0.5, "outcome": "passed"},
        {"area": "tests/kfops", "test": "tests.kfops.test_cli.TestRun::test_run[a]", "seconds": 1.25,
         "outcome": "skipped"},
        {"area": "tests/infra", "test": "tests.infra.local.test_up::test_up", "seconds": 3.0, "outcome": "failure"},
        {"area": "tests", "test": "tests.test_conftest::test_marks", "seconds": 0.01, "outcome": "passed"},
        {"area": "tests/serving", "test": "tests.serving.test_x::test_error", "seconds": 0.0, "outcome": "error"},
    ]


def test_areas_are_summed_most_seconds_first_and_the_slowest_listed() -> None:
    summary = summarize(junit_times(REPORT), slowest=2)
    assert summary["tests"] == 5
    assert summary["outcomes"] == {"passed": 2, "skipped": 1, "failure": 1, "error": 1}
    assert summary["test_seconds"] == pytest.approx(4.76)
    assert list(summary["areas"].items()) == [("tests/infra", {"tests": 1, "seconds": 3.0}),
                                              ("tests/kfops", {"tests": 2, "seconds": 1.75}),
                                              ("tests", {"tests": 1, "seconds": 0.01}),
                                              ("tests/serving", {"tests": 1, "seconds": 0.0})]
    assert summary["slowest"] == [{"test": "tests.infra.local.test_up::test_up", "seconds": 3.0},
                                  {"test": "tests.kfops.test_cli.TestRun::test_run[a]", "seconds": 1.25}]
