"""Which Seldon Core (v1) operator version kfops installs, and which versions come under the BSL.

Seldon Core releases after 1.17.1 are published under the Business Source License 1.1, which restricts production use
without a commercial licence. The Pulumi program pins the last Apache-2.0 release by default and warns when a stack
asks for a later one; the deploy step uses the same check before it creates a ``SeldonDeployment``.
"""

from __future__ import annotations

import re
from typing import Final

from kfops.base.upstream import seldon

#: Operator (Helm chart ``seldon-core-operator``) and storage-initializer version a stack gets unless it says otherwise:
#: the version the facts in :mod:`kfops.base.upstream.seldon` were checked at.
DEFAULT_SELDON_CORE_VERSION: Final = seldon.VERSION
#: The last release published under Apache-2.0; everything newer is BSL-licensed.
LAST_APACHE_RELEASE: Final = seldon.LAST_APACHE_RELEASE.value

_VERSION = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)(?:[-+][0-9A-Za-z.-]+)?$")


def parse_version(version: str) -> tuple[int, int, int]:
    """Read a Seldon Core release number such as ``1.17.1`` or ``v1.18.0``.

    Args:
        version: The release as written in a chart version or image tag.

    Returns:
        ``(major, minor, patch)``.

    Raises:
        ValueError: If ``version`` is not a ``MAJOR.MINOR.PATCH`` release number.
    """
    match = _VERSION.match(version.strip())
    if match is None:
        raise ValueError(f"{version!r} is not a Seldon Core release number like {DEFAULT_SELDON_CORE_VERSION}")
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


def is_bsl_licensed(version: str) -> bool:
    """Tell whether a Seldon Core release is published under the Business Source License.

    Args:
        version: A release number (see :func:`parse_version`).

    Returns:
        True for every release after 1.17.1.

    Raises:
        ValueError: If ``version`` is not a release number.
    """
    return parse_version(version) > LAST_APACHE_RELEASE


def license_warning(version: str) -> str | None:
    """The warning to show for a BSL-licensed release, or None for an Apache-2.0 one.

    Args:
        version: A release number (see :func:`parse_version`).

    Returns:
        One sentence naming the version, the licence and the Apache-2.0 alternative; None if there is nothing to warn.

    Raises:
        ValueError: If ``version`` is not a release number.
    """
    if not is_bsl_licensed(version):
        return None
    return (
        f"Seldon Core {version} is published under the Business Source License 1.1, which restricts production use "
        f"without a commercial licence from Seldon; {DEFAULT_SELDON_CORE_VERSION} is the last Apache-2.0 release"
    )
