"""S3 credentials of the local object store: generated once, stored 0600 in the state dir, reused afterwards."""

from __future__ import annotations

import json
import re
import secrets
import string
from pathlib import Path

from kfops.base.errors import KfopsError
from kfops.base.files import write_private
from kfops.base.storage import S3Credentials

_ACCESS_KEY = re.compile(r"^[A-Z0-9]{20}$")
_SECRET_KEY = re.compile(r"^[A-Za-z0-9/+]{40}$")


def generate() -> S3Credentials:
    """A fresh random key pair from the operating system's CSPRNG."""
    upper = string.ascii_uppercase + string.digits
    secret_alphabet = string.ascii_letters + string.digits + "/+"
    return S3Credentials(
        access_key_id="KF" + "".join(secrets.choice(upper) for _ in range(18)),
        secret_access_key="".join(secrets.choice(secret_alphabet) for _ in range(40)),
    )


def load_or_create(path: Path) -> S3Credentials:
    """Read the credentials file, creating it (mode 0600) with fresh credentials if it does not exist.

    Raises:
        KfopsError: The file exists but is not a credentials file this module wrote.
    """
    if not path.exists():
        creds = generate()
        write(path, creds)
        return creds
    try:
        data = json.loads(path.read_text())
        creds = S3Credentials(access_key_id=data["access_key_id"], secret_access_key=data["secret_access_key"])
        if not (_ACCESS_KEY.match(creds.access_key_id) and _SECRET_KEY.match(creds.secret_access_key)):
            raise ValueError("keys do not have the expected shape")
    except (ValueError, KeyError, TypeError) as error:
        raise KfopsError(f"credentials file {path} is corrupted ({type(error).__name__}: {error})",
            f"delete {path} and run `kfops local up` again: it generates new credentials and restarts the object store "
            "with them (stored objects are kept)",
        ) from error
    return creds


def write(path: Path, creds: S3Credentials) -> None:
    """Write ``creds`` so that only the owner can read them, never exposing them with wider permissions."""
    write_private(path, json.dumps({"access_key_id": creds.access_key_id,
                                    "secret_access_key": creds.secret_access_key}, indent=2))
