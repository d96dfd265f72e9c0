"""The cluster target: the Pulumi program's components and ``kfops render``, and what runs the workflow's specs there.

Katib executes the tuning Experiment; Seldon Core serves the SeldonDeployments.
"""
