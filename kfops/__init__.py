"""kfops: one Kubeflow MLOps workflow, provisioned by Pulumi on a cluster or run for real on one machine."""

__version__ = "0.1.0"
