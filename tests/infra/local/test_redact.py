"""The redactor between SeaweedFS and its log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra.local.credentials import generate, write
from infra.local.redact import REDACTED, Secrets, redact

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("line", "expected"), [
    ("W1205 auth_signature_v4.go:256 InvalidAccessKeyId: attempted key 'AKIAREALKEY123' not found. Available keys: 1",
     f"W1205 auth_signature_v4.go:256 InvalidAccessKeyId: attempted key '{REDACTED}' not found. Available keys: 1"),
    ("Authorization: AWS4-HMAC-SHA256 Credential=KFABCDEFGHIJKLMNOPQR/20261205/us-east-1/s3/aws4_request",
     f"Authorization: AWS4-HMAC-SHA256 Credential={REDACTED}/20261205/us-east-1/s3/aws4_request"),
    ('{"accessKey": "KFABCDEFGHIJKLMNOPQR", "secretKey": "abcdefghijklmnopqrstuvwxyz0123456789ABCD"}',
     f'{{"accessKey": "{REDACTED}", "secretKey": "{REDACTED}"}}'),
    ("volume 3 loaded, 12 files", "volume 3 loaded, 12 files"),
])
def test_keys_as_programs_print_them_are_redacted(line: str, expected: str) -> None:
    assert redact(line, set()) == expected


def test_the_platforms_own_values_are_redacted_wherever_they_appear_and_new_ones_are_learnt(tmp_path: Path) -> None:
    path = tmp_path / "credentials.json"
    first = generate()
    write(path, first)
    secrets = Secrets([path, tmp_path / "missing.json"])
    line = f"odd line {first.secret_access_key} and {first.access_key_id}"
    assert redact(line, secrets.current()) == f"odd line {REDACTED} and {REDACTED}"
    second = generate()
    write(path, second)
    assert {second.access_key_id, first.access_key_id} <= secrets.current(), "old values stay redacted"
    (tmp_path / "s3.json").write_text(json.dumps({"identities": [{"credentials": [{"accessKey": "K" * 20}]}]}))
    assert "K" * 20 in Secrets([tmp_path / "s3.json"]).current()
