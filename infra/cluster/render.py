"""``kfops render``: run the Pulumi program under Pulumi's mock runtime and write what it would create as YAML.

No Pulumi CLI, provider plugin or cluster is involved (:mod:`infra.cluster.mock_runtime`). The objects are written
one file per object for review and validated offline (:mod:`infra.cluster.validate`). Secret values (Pulumi secrets,
encrypted stack config) are written as a placeholder, never as the value.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from infra.cluster.mock_runtime import SECRET_PLACEHOLDER, run_program, scrub
from infra.cluster.stack_config import load_stack_config
from infra.cluster.validate import validate_all
from kfops.base.errors import KfopsError, in_step
from kfops.base.paths import REPO_ROOT

#: Marks a directory as written by ``kfops render``, so a re-render may replace its files.
MARKER = ".kfops-render"


@in_step("render")
def render_stack(stack: str, out: Path, root: Path = REPO_ROOT) -> list[Path]:
    """Render a stack's Kubernetes objects to ``out``, one YAML file per object, and validate them.

    Besides the objects, ``out`` gets ``_pulumi-resources.yaml`` (the resources that are not Kubernetes objects:
    Helm releases, upstream kustomizations, generated passwords, KFP API calls) and ``_stack-outputs.yaml``. Patches
    of existing objects (``NamespacePatch``) are written like objects, their file name ending in ``.patch.yaml``.

    Args:
        stack: Stack name (``Pulumi.<stack>.yaml`` at the repository root).
        out: Directory to write to (created; a previous render there is replaced).
        root: Directory with ``Pulumi.yaml`` and the stack files.

    Returns:
        The files written, objects first.

    Raises:
        KfopsError: For an unknown stack, bad config (naming the key), a program failure, an output directory
            with other content, or an invalid object (:class:`infra.cluster.validate.ManifestError`, written anyway).
    """
    project, config, secret_keys = load_stack_config(stack, root)
    try:
        rendering = run_program(config, secret_keys, stack=stack, project=project)
    except KfopsError:
        raise
    except ModuleNotFoundError as error:
        raise KfopsError(f"the Pulumi program cannot import {error.name}: {error}",
                         "install the project (`make venv`) so that pipelines.compile is importable") from error
    except Exception as error:
        raise KfopsError(f"the Pulumi program failed under the mock runtime: {type(error).__name__}: {error}",
                         "run with KFOPS_DEBUG=1 to see the traceback") from error

    _prepare(out)
    written = []
    manifests = rendering.manifests()
    objects = rendering.objects()
    for index, (resource, obj) in enumerate(zip(objects, manifests, strict=True), start=1):
        meta = obj.get("metadata", {})
        stem = "-".join(part for part in (obj["kind"], meta.get("namespace"), meta.get("name")) if part).lower()
        suffix = ".patch.yaml" if resource.type.endswith("Patch") else ".yaml"
        written.append(_write(out / f"{index:02d}-{stem}{suffix}", obj))
    others = [{"type": resource.type, "name": resource.name, "inputs": scrub(resource.inputs)}
              for resource in rendering.resources if resource.is_reference]
    others += [{"invoke": token, "arguments": scrub(arguments)} for token, arguments in rendering.invokes]
    written.append(_write(out / "_pulumi-resources.yaml", others))
    outputs = {name: SECRET_PLACEHOLDER if is_secret else scrub(value)
               for name, (value, is_secret) in sorted(rendering.outputs.items())}
    written.append(_write(out / "_stack-outputs.yaml", outputs))
    validate_all(manifests)
    return written


def _prepare(out: Path) -> None:
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).is_file():
            raise KfopsError(f"{out} exists and holds files kfops render did not write",
                             "choose an empty or new directory for --out")
        for stale in out.glob("*.yaml"):
            stale.unlink()
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("Written by `kfops render`; its YAML files are replaced on the next render.\n",
                              encoding="utf-8")


def _write(path: Path, content: Any) -> Path:
    path.write_text(yaml.safe_dump(content, sort_keys=False, default_flow_style=False), encoding="utf-8")
    return path
