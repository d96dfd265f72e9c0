"""Test-suite times: the wall time of ``make check`` and where its seconds go, test by test.

Runs the pytest command of the Makefile's ``check`` recipe (read from the Makefile, so the two cannot drift apart),
from this interpreter's environment, timed from start to exit, with pytest's ``--durations`` in its log and a JUnit
XML report from which the per-test times are summed per area (the test directory) and the slowest tests listed.
``make check``'s other prerequisite, ``make venv``, is a timestamp comparison when the venvs are up to date.

``make test`` (every test but the kind ones, many starting real services and whole workflows) is not timed
by default, as ``make bench`` should not take that long; ``--full`` times its commands the same way.

Writes JSON and a PNG to ``benchmarks/results/`` and publishes them to ``benchmarks/figures/suite.*`` (unless
``--no-publish``). Usage::

    .venv/bin/python benchmarks/suite_times.py [--full] [--no-publish]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import BIN, bar_chart, output_dir, print_table, progress, publish
from kfops.base.paths import REPO_ROOT

#: What ``make help`` promises of ``make check``.
CHECK_GOAL_S = 60.0
#: Slowest tests listed.
SLOWEST = 10


def recipe(makefile: str, target: str) -> list[str]:
    """The command lines of ``target``'s recipe in a Makefile's text (tab-indented lines after ``target:``).

    Raises:
        ValueError: No rule for ``target``.
    """
    lines = makefile.splitlines()
    rule = re.compile(rf"^{re.escape(target)}\s*:(?!=)")
    for index, line in enumerate(lines):
        if rule.match(line):
            commands = []
            for body in lines[index + 1:]:
                if not body.startswith("\t"):
                    break
                commands.append(body[1:].strip())
            return commands
    raise ValueError(f"no rule for {target!r} in the Makefile")


def assignments(makefile: str) -> dict[str, str]:
    """The Makefile's plain variable assignments (``NAME ?= value``, ``NAME := value``), as written.

    Values that call make functions are left out: only what a recipe line can use as is (``$(PARALLEL)``).
    """
    found = {}
    for line in makefile.splitlines():
        match = re.match(r"^([A-Z_]+)\s*[:?]?=\s*(.*)$", line)
        if match and "$(" not in match.group(2):
            found[match.group(1)] = match.group(2).strip()
    return found


def expand(command: str, variables: Mapping[str, str]) -> list[str]:
    """A recipe line as an argument list, its ``$(NAME)`` references replaced from ``variables``.

    Raises:
        ValueError: The line uses a variable not in ``variables``.
    """
    def value(match: re.Match[str]) -> str:
        if match.group(1) not in variables:
            raise ValueError(f"the recipe line {command!r} uses $({match.group(1)}), which is not known here")
        return variables[match.group(1)]

    return shlex.split(re.sub(r"\$\(([A-Za-z_]+)\)", value, command))


def junit_times(report: str) -> list[dict[str, Any]]:
    """Each test case of a pytest JUnit XML report: its area (test directory), name, seconds and outcome."""
    cases = []
    # The report is the one pytest just wrote here, not data from elsewhere.
    for case in ElementTree.fromstring(report).iter("testcase"):  # noqa: S314
        classname = case.get("classname", "")
        parts = classname.split(".")
        # tests.kfops.test_cli.TestX -> tests/kfops; a test module directly under tests/ is its own area.
        modules = [part for part in parts if not part[:1].isupper()]
        area = "/".join(modules[:2]) if len(modules) > 2 else "/".join(modules[:1]) or "?"
        outcome = next((child.tag for child in case if child.tag in ("failure", "error", "skipped")), "passed")
        cases.append({"area": area, "test": f"{classname}::{case.get('name', '')}",
                      "seconds": float(case.get("time", "0") or 0), "outcome": outcome})
    return cases


def summarize(cases: Sequence[Mapping[str, Any]], slowest: int = SLOWEST) -> dict[str, Any]:
    """Counts by outcome, the seconds and number of tests of each area (most seconds first), the slowest tests."""
    outcomes: dict[str, int] = {}
    areas: dict[str, dict[str, float]] = {}
    for case in cases:
        outcomes[case["outcome"]] = outcomes.get(case["outcome"], 0) + 1
        area = areas.setdefault(case["area"], {"tests": 0, "seconds": 0.0})
        area["tests"] += 1
        area["seconds"] += case["seconds"]
    ordered = dict(sorted(areas.items(), key=lambda item: (-item[1]["seconds"], item[0])))
    top = sorted(cases, key=lambda case: -case["seconds"])[:slowest]
    return {"tests": len(cases), "outcomes": outcomes, "test_seconds": sum(case["seconds"] for case in cases),
            "areas": {name: {"tests": int(area["tests"]), "seconds": round(area["seconds"], 2)}
                      for name, area in ordered.items()},
            "slowest": [{"test": case["test"], "seconds": round(case["seconds"], 2)} for case in top]}


def timed_pytest(argv: list[str], report: Path, log: Path, timeout: float) -> dict[str, Any]:
    """Run one pytest command with a JUnit report; its wall time, exit code and per-test summary."""
    command = [*argv, f"--junitxml={report}", f"--durations={SLOWEST}"]
    progress(f"timing: {shlex.join(command)}")
    began = time.perf_counter()
    with log.open("w") as output:
        result = subprocess.run(command, cwd=REPO_ROOT, stdout=output, stderr=subprocess.STDOUT, timeout=timeout,
                                check=False)
    wall = time.perf_counter() - began
    summary = summarize(junit_times(report.read_text())) if report.exists() else {}
    return {"command": shlex.join(argv), "wall_s": round(wall, 2), "exit_code": result.returncode, **summary}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="Also time `make test`'s commands (minutes).")
    parser.add_argument("--no-publish", action="store_true",
                        help="Leave benchmarks/figures/ as it is (for short trial runs).")
    args = parser.parse_args()

    from benchmarks.targets import SELDON_BIN

    makefile = (REPO_ROOT / "Makefile").read_text()
    # The paths as this script sees them; the rest (e.g. PARALLEL, the test processes) as the Makefile sets them.
    variables = {**assignments(makefile), "BIN": str(BIN), "SELDON_VENV": str(SELDON_BIN.parent)}
    out = output_dir("suite")
    suites: dict[str, list[dict[str, Any]]] = {}
    for target in ("check", "test") if args.full else ("check",):
        suites[target] = [
            timed_pytest(expand(line, variables), out / f"{target}-{index}.xml", out / f"{target}-{index}.log",
                         timeout=3600)
            for index, line in enumerate(recipe(makefile, target), 1) if "pytest" in line]
    check = suites["check"]
    check_wall = sum(run["wall_s"] for run in check)
    verdicts = {f"make check under {CHECK_GOAL_S:.0f} s": check_wall < CHECK_GOAL_S
                and all(run["exit_code"] == 0 for run in check)}
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    record = {"command": " ".join(["benchmarks/suite_times.py", *sys.argv[1:]]), "machine": machine,
              "suites": suites, "goals": verdicts}
    (out / "suite.json").write_text(json.dumps(record, indent=1))
    rows: dict[str, float] = {"make check: wall": check_wall,
                              "make check: sum of test times": sum(run.get("test_seconds", 0.0) for run in check)}
    for run in check:
        rows.update({f"make check, {area}": cell["seconds"] for area, cell in run.get("areas", {}).items()})
    for index, run in enumerate(suites.get("test", []), 1):
        rows[f"make test, command {index}: wall"] = run["wall_s"]
    bar_chart(rows, title=f"test-suite times ({machine})", unit="s", path=out / "suite.png",
              highlight=[label for label in rows if label.endswith(": wall")])
    if not args.no_publish:
        publish(out, "suite")

    for target, runs in suites.items():
        for run in runs:
            print(f"\nmake {target}: `{run['command']}`: {run['wall_s']:.1f} s wall, exit {run['exit_code']}, "
                  f"{run.get('tests', 0)} tests {run.get('outcomes', {})}\n")
            print_table(("area", "tests", "seconds"), ((area, cell["tests"], f"{cell['seconds']:.1f}")
                                                       for area, cell in run.get("areas", {}).items()))
            print("\nslowest:")
            for case in run.get("slowest", []):
                print(f"  {case['seconds']:6.2f} s  {case['test']}")
    for goal, met in verdicts.items():
        print(f"\n  {'met ' if met else 'MISS'} {goal}")
    print(f"\nwritten: {out / 'suite.json'}, {out / 'suite.png'} and pytest's logs and reports in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
