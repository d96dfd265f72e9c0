"""Compile the workflow to the KFP v2 IR YAML (the file the cluster runs and the golden test compares)."""

from __future__ import annotations

import tempfile
from pathlib import Path

WORKFLOW_FILE = "kfops_pipeline.yaml"


def compile_workflow() -> str:
    """The compiled workflow as YAML text; the same source always gives the same bytes."""
    from kfp import compiler

    from pipelines.workflow import kfops_pipeline

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / WORKFLOW_FILE
        compiler.Compiler().compile(kfops_pipeline, str(path))
        return path.read_text()


def write_workflow(out_dir: Path) -> Path:
    """Compile into ``out_dir``; return the written file."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / WORKFLOW_FILE
    path.write_text(compile_workflow())
    return path
