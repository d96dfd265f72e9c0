"""What kfops relies on about the upstream components it installs and talks to, each fact with its source.

One module per pinned component (:mod:`.kfp`, :mod:`.katib`, :mod:`.seldon`, :mod:`.kubeflow`, :mod:`.cert_manager`,
:mod:`.mlserver`). A fact is a value the Pulumi program, the workflow or the nightly harness uses (a Service name and
port, a Secret that upstream pods mount, a verb a driver needs, a limit a webhook enforces, a setting a suggestion
service accepts) together with where upstream says so, at the pinned tag. The program and the workflow take these
values from here; and each module's ``VERSION`` is the version the facts were read at, tied by tests to the version
the project pins and to the pinned upstream data, so a bump that was not re-checked fails.

Where a fact's source is a data file (a manifest, chart or CRD), ``tests/upstream/test_facts_against_data.py`` reads
that file at the pinned tag and checks the fact; the custom resources' fields are read from upstream's CRDs the same
way (``tests/upstream/fields.py``). Facts from upstream's code were read at the tag (``docs/cluster-review.md``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Source:
    """Where upstream says it: repository, tag (or version), path, lines."""

    repo: str
    ref: str
    path: str
    lines: str = ""

    def __str__(self) -> str:
        return f"{self.repo}@{self.ref}:{self.path}" + (f"#L{self.lines}" if self.lines else "")

    def tree_url(self) -> str:
        """The GitHub URL of ``path`` at ``ref`` (how kustomize and Pulumi reference a remote directory)."""
        return f"https://github.com/{self.repo}/tree/{self.ref}/{self.path}"


@dataclass(frozen=True)
class Service:
    """A Service an upstream install creates, and the port kfops uses on it."""

    name: str
    namespace: str
    port: int
    source: Source

    def host(self) -> str:
        """Its in-cluster DNS name."""
        return f"{self.name}.{self.namespace}.svc.cluster.local"

    def url(self, scheme: str = "http") -> str:
        """Its in-cluster URL."""
        return f"{scheme}://{self.host()}:{self.port}"


@dataclass(frozen=True)
class Grant:
    """One thing an upstream component does with the API as the pipeline's ServiceAccount: RBAC it must be given."""

    api_group: str
    resource: str
    verb: str
    why: str
    source: Source
    resource_name: str | None = None


@dataclass(frozen=True)
class Fact(Generic[T]):
    """A value with its source (for facts that are not a Service or a Grant)."""

    value: T
    source: Source
