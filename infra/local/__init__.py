"""The local target: the platform services kfops runs on one machine (SeaweedFS, MLflow, serving runtimes)."""
