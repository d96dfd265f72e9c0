"""Serving runtimes for registered MLflow models.

The seldon-core wrapper model class (Seldon v1 protocol) and an MLServer runtime (Open Inference v2 protocol).
Modules here import only what their runtime has installed: the v1 wrapper runs in its own Python 3.12 environment
without the rest of kfops.
"""
