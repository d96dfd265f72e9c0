"""The trainer: one model from a dataset and hyperparameters (``python -m trainer``).

Every Katib trial and the final training step use it, so tuning and training can never disagree about what a
hyperparameter means.
"""
