"""Upstream's own files at the pinned tags: the judge of the cluster half's tests.

The manifests, charts and CRDs of the components kfops installs, byte for byte as upstream tags them, plus
``built/``: ``kubectl kustomize`` (kustomize v5.5.0) output of exactly the install paths the stack uses. Never copied
into this repository. They are read from, in order:

1. ``KFOPS_UPSTREAM_DIR``, if set, else ``../shared/upstream`` next to the checkout (where CI puts them);
2. a cache (``$KFOPS_CACHE_DIR/upstream``, default ``~/.cache/kfops/upstream``) filled on first use: raw files from
   GitHub at the tag (``KFOPS_UPSTREAM_RAW_URL`` replaces ``https://raw.githubusercontent.com``), ``built/`` files
   with ``kubectl kustomize`` of the remote install path at the tag.

Whichever the source, a file is used only if its SHA-256 is the one in ``tests/upstream/SHA256SUMS`` (kfops' own
list of the files its tests read): a changed or unlisted file fails, with the fix. Layout:
``<owner>/<repo>/<tag>/<path in the repository>`` and ``built/<name>.yaml``.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import os
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from kfops.base.paths import REPO_ROOT

CHECKSUMS = Path(__file__).with_name("SHA256SUMS")
RAW_URL = "https://raw.githubusercontent.com"
#: libyaml's loader when PyYAML has it: the bundles hold megabytes of CRDs.
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

#: ``built/`` bundles: the repository, tag and kustomization each one is the output of (shared/upstream/README.md).
BUILT: dict[str, tuple[str, str, str]] = {
    "built/kfp-cluster-scoped.yaml": ("kubeflow/pipelines", "2.17.0", "manifests/kustomize/cluster-scoped-resources"),
    "built/kfp-k8s-native.yaml": ("kubeflow/pipelines", "2.17.0",
                                  "manifests/kustomize/env/cert-manager/platform-agnostic-k8s-native"),
    "built/katib.yaml": ("kubeflow/katib", "v0.19.0", "manifests/v1beta1/installs/katib-standalone"),
    "built/poddefaults.yaml": ("kubeflow/manifests", "v1.10.0",
                               "apps/admission-webhook/upstream/overlays/cert-manager"),
}


#: Files the shared data keeps outside the ``owner/repo/tag/path`` layout (``validator-inputs/``, verbatim copies).
ALIASES: dict[str, str] = {
    "kubeflow/katib/v0.19.0/api/openapi-spec/swagger.json":
        "validator-inputs/katib-v0.19.0_api_openapi-spec_swagger.json",
}


class UpstreamDataError(AssertionError):
    """Upstream data is missing, unlisted or not what its checksum says (a test failure, never a skip)."""


@functools.cache
def checksums() -> dict[str, str]:
    """``relative path -> sha256`` of every upstream file kfops' tests may read."""
    found = {}
    for line in CHECKSUMS.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            digest, path = line.split(maxsplit=1)
            found[path.strip()] = digest
    return found


def roots() -> list[Path]:
    """Where upstream data is looked for, first match wins."""
    configured = os.environ.get("KFOPS_UPSTREAM_DIR")
    return [Path(configured) if configured else REPO_ROOT.parent / "shared" / "upstream", cache_dir()]


def cache_dir() -> Path:
    """Where downloaded upstream files are kept."""
    base = Path(os.environ.get("KFOPS_CACHE_DIR") or Path.home() / ".cache" / "kfops")
    return base / "upstream"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def has(relative: str) -> bool:
    """Whether kfops' checksum list names this upstream file (i.e. it is part of the pinned data)."""
    return relative in checksums()


def path(relative: str) -> Path:
    """The verified local copy of an upstream file.

    Raises:
        UpstreamDataError: The file is not in kfops' checksum list, cannot be found or fetched, or differs.
    """
    expected = checksums().get(relative)
    if expected is None:
        raise UpstreamDataError(
            f"{relative} is not in tests/upstream/SHA256SUMS: upstream data for this pin is absent. Read upstream at "
            "the new tag, put its files under ../shared/upstream (see its README) and add their checksums")
    for candidate in (root / name for root in roots() for name in (relative, ALIASES.get(relative, relative))):
        if candidate.is_file():
            actual = sha256(candidate)
            if actual != expected:
                raise UpstreamDataError(f"{candidate} has SHA-256 {actual}, tests/upstream/SHA256SUMS says {expected}: "
                                        "this is not the file of the pinned tag")
            return candidate
    return _fetch(relative, expected)


def text(relative: str) -> str:
    return path(relative).read_text(encoding="utf-8")


def documents(relative: str, strip_template_lines: bool = False) -> list[dict[str, Any]]:
    """The YAML documents of an upstream file (empty ones dropped); optionally with Helm directive lines removed.

    A fresh copy each time: callers (the program's transformations) change them."""
    return copy.deepcopy(_documents(relative, strip_template_lines))


@functools.cache
def _documents(relative: str, strip_template_lines: bool) -> list[dict[str, Any]]:
    content = text(relative)
    if strip_template_lines:
        content = "\n".join(line for line in content.splitlines() if not line.lstrip().startswith(("{{", "# START")))
    return [doc for doc in yaml.load_all(content, Loader=LOADER) if doc]


def load_yaml(content: str) -> Any:
    """One YAML document, with the safe loader (libyaml's when there is one)."""
    return yaml.load(content, Loader=LOADER)  # noqa: S506 - LOADER is CSafeLoader or SafeLoader


def at(repo: str, tag: str, repo_path: str) -> str:
    """The relative data path of a file of ``repo`` at ``tag``."""
    return f"{repo}/{tag}/{repo_path}"


def tree(repo: str, tag: str, repo_path: str) -> Iterator[str]:
    """Every listed upstream file under a directory of ``repo`` at ``tag``."""
    prefix = at(repo, tag, repo_path).rstrip("/") + "/"
    return (name for name in sorted(checksums()) if name.startswith(prefix))


def _fetch(relative: str, expected: str) -> Path:
    target = cache_dir() / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    try:
        if relative in BUILT:
            repo, tag, directory = BUILT[relative]
            kubectl = shutil.which("kubectl")
            if kubectl is None:
                raise UpstreamDataError(f"{relative} is not here and building it needs kubectl (kustomize v5.5.0): "
                                        "install kubectl or set KFOPS_UPSTREAM_DIR to a copy of the pinned data")
            built = subprocess.run([kubectl, "kustomize", f"https://github.com/{repo}/{directory}?ref={tag}"],
                                   capture_output=True, check=False)
            if built.returncode != 0:
                raise UpstreamDataError(f"kubectl kustomize of {repo}@{tag}:{directory} failed: "
                                        f"{built.stderr.decode(errors='replace')[-500:]}")
            partial.write_bytes(built.stdout)
        else:
            owner, repo_name, tag, repo_path = relative.split("/", 3)
            base = os.environ.get("KFOPS_UPSTREAM_RAW_URL", RAW_URL).rstrip("/")
            url = f"{base}/{owner}/{repo_name}/{tag}/{repo_path}"
            with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 - a pinned https URL or a test's
                partial.write_bytes(response.read())
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise UpstreamDataError(f"{relative} is neither in {', '.join(str(r) for r in roots()[:-1])} nor fetchable: "
                                f"{error}. Put the pinned upstream data there or set KFOPS_UPSTREAM_DIR") from error
    actual = sha256(partial)
    if actual != expected:
        partial.unlink()
        hint = " (kustomize other than v5.5.0 writes other bytes)" if relative in BUILT else ""
        raise UpstreamDataError(f"fetched {relative} has SHA-256 {actual}, expected {expected}{hint}")
    partial.replace(target)
    return target
