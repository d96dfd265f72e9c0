from __future__ import annotations

import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from infra.local.runner import new_run_dir

pytestmark = pytest.mark.unit


def test_runs_started_in_the_same_second_get_their_own_private_directories(tmp_path: Path) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        made = list(pool.map(lambda _: new_run_dir(tmp_path / "runs", "winequality"), range(8)))
    assert len(set(made)) == 8
    assert all(path.is_dir() and path.parent == tmp_path / "runs" for path in made)
    assert all(stat.S_IMODE(path.stat().st_mode) == 0o700 for path in made)
    assert all("winequality" in path.name for path in made)


def test_reports_are_copied_out_of_kfps_artifact_tree_privately(tmp_path: Path) -> None:
    from infra.local.runner import collect_reports

    for task, output in (("tune", "report"), ("register-and-promote", "comparison")):
        page = tmp_path / "artifacts" / "kfops-train-and-serve-2026" / task / output
        page.parent.mkdir(parents=True)
        page.write_text(f"<html>{task}</html>")
    found = collect_reports(tmp_path)
    assert found == {"tuning": str(tmp_path / "reports" / "tuning.html"),
                     "promotion": str(tmp_path / "reports" / "promotion.html")}
    assert Path(found["tuning"]).read_text() == "<html>tune</html>"
    assert stat.S_IMODE((tmp_path / "reports").stat().st_mode) == 0o700
    assert all(stat.S_IMODE(Path(path).stat().st_mode) == 0o600 for path in found.values())
