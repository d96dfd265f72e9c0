"""The local target's tuning executor: the Katib Experiment spec run on this machine, with Katib's semantics."""
