"""Where the checkout's own files are: the one definition every layer uses.

kfops is installed in place (``pip install -e``, locally and in the project image at ``/app``), so the repository
root is two levels above this package.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

#: The repository checkout (``pyproject.toml``, ``data/``, ``Pulumi.yaml``...).
REPO_ROOT: Final = Path(__file__).resolve().parents[2]
#: Datasets kfops ships (see ``data/README.md`` for attribution).
BUNDLED_DATA: Final = REPO_ROOT / "data"
