"""The platform services' start-up helpers that need no running service: SeaweedFS's volumes on disk and the MLflow
database template (its real use, with MLflow's own migration, is in test_platform.py)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from infra.local.services import mlflow_template, save_mlflow_template, seed_mlflow_database, volumes_on_disk
from infra.local.settings import LocalSettings

pytestmark = pytest.mark.unit


def test_volumes_on_disk_are_named_by_collection_and_id(tmp_path: Path) -> None:
    for name in ("datasets_1.dat", "datasets_1.idx", "mlflow_12.dat", "7.dat", "my_bucket_3.dat", "vol_dir.uuid",
                 "datasets_2.vif"):
        (tmp_path / name).write_text("")
    assert volumes_on_disk(tmp_path) == {("datasets", 1), ("mlflow", 12), ("", 7), ("my_bucket", 3)}


def store(path: Path, experiments: int = 1, runs: int = 0) -> Path:
    """A SQLite file with the tables the template check reads, shaped as MLflow's (only the columns used)."""
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE experiments (experiment_id INTEGER, name TEXT, creation_time INTEGER, "
                   "last_update_time INTEGER)")
        db.execute("CREATE TABLE runs (run_uuid TEXT)")
        db.execute("CREATE TABLE registered_models (name TEXT)")
        db.executemany("INSERT INTO experiments VALUES (?, ?, 1, 1)", [(i, f"e{i}") for i in range(experiments)])
        db.executemany("INSERT INTO runs VALUES (?)", [(f"r{i}",) for i in range(runs)])
    db.close()
    return path


def test_an_empty_store_becomes_the_template_and_seeds_new_state_dirs(tmp_path: Path) -> None:
    settings = LocalSettings(cache_dir=tmp_path / "cache")
    assert save_mlflow_template(settings, store(tmp_path / "fresh.db"))
    template = mlflow_template(settings)
    assert template.stat().st_mode & 0o777 == 0o600
    assert not save_mlflow_template(settings, store(tmp_path / "other.db")), "an existing template is kept"

    database = tmp_path / "state" / "mlflow" / "mlflow.db"
    began = int(time.time() * 1000)
    assert seed_mlflow_database(settings, database)
    assert database.stat().st_mode & 0o777 == 0o600
    with sqlite3.connect(database) as db:
        [(created, updated)] = db.execute("SELECT creation_time, last_update_time FROM experiments").fetchall()
    db.close()
    assert created >= began, "the Default experiment is created when the state dir is"
    assert updated >= began
    assert not seed_mlflow_database(settings, database), "an existing database is never replaced"


@pytest.mark.parametrize("contents", [{"experiments": 2}, {"runs": 1}])
def test_a_store_that_holds_anything_is_never_a_template(tmp_path: Path, contents: dict[str, int]) -> None:
    settings = LocalSettings(cache_dir=tmp_path / "cache")
    assert not save_mlflow_template(settings, store(tmp_path / "used.db", **contents))
    assert not mlflow_template(settings).exists()
    assert list((tmp_path / "cache").iterdir()) == [], "no partial copy is left behind"


def test_without_a_template_a_new_database_is_left_to_mlflow(tmp_path: Path) -> None:
    settings = LocalSettings(cache_dir=tmp_path / "cache")
    assert not seed_mlflow_database(settings, tmp_path / "mlflow.db")
    assert not (tmp_path / "mlflow.db").exists()
