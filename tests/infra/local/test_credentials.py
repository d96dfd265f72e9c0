from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from infra.local import credentials
from kfops.base.errors import KfopsError

pytestmark = pytest.mark.unit


def test_first_load_generates_private_credentials(tmp_path: Path) -> None:
    path = tmp_path / "credentials.json"
    creds = credentials.load_or_create(path)
    assert len(creds.access_key_id) == 20
    assert len(creds.secret_access_key) == 40
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_later_loads_reuse_the_same_credentials(tmp_path: Path) -> None:
    path = tmp_path / "credentials.json"
    assert credentials.load_or_create(path) == credentials.load_or_create(path)


def test_each_generation_is_different() -> None:
    assert credentials.generate() != credentials.generate()


def test_repr_hides_the_secret() -> None:
    creds = credentials.generate()
    assert creds.secret_access_key not in repr(creds)


@pytest.mark.parametrize(
    ("case", "content"),
    [
        ("not json", "{oops"),
        ("missing key", json.dumps({"access_key_id": "KF" + "A" * 18})),
        ("wrong shape", json.dumps({"access_key_id": "short", "secret_access_key": "x" * 40})),
        ("not an object", json.dumps(["a", "b"])),
        ("empty", ""),
    ],
)
def test_corrupted_file_is_reported_with_the_fix(tmp_path: Path, case: str, content: str) -> None:
    path = tmp_path / "credentials.json"
    path.write_text(content)
    with pytest.raises(KfopsError, match=r"credentials file .* is corrupted") as raised:
        credentials.load_or_create(path)
    assert "delete" in raised.value.fix
    assert path.read_text() == content, f"{case}: a corrupted file must not be overwritten silently"
