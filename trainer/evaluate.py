"""Metrics the trainer reports, per task (the names recipes and Katib objectives refer to)."""

from __future__ import annotations

from typing import Any

import numpy as np


def evaluate(task: str, model: Any, x: Any, y: Any) -> dict[str, float]:
    """Score a fitted model on ``(x, y)``: rmse/mae/r2 for regression, accuracy/f1/log_loss for classification."""
    from sklearn import metrics

    predictions = model.predict(x)
    if task == "regression":
        return {
            "rmse": float(np.sqrt(metrics.mean_squared_error(y, predictions))),
            "mae": float(metrics.mean_absolute_error(y, predictions)),
            "r2": float(metrics.r2_score(y, predictions)),
        }
    classes = np.unique(y)
    scores = {
        "accuracy": float(metrics.accuracy_score(y, predictions)),
        "f1": float(metrics.f1_score(y, predictions, average="binary" if len(classes) == 2 else "macro")),
    }
    if hasattr(model, "predict_proba"):
        scores["log_loss"] = float(metrics.log_loss(y, model.predict_proba(x), labels=model.classes_))
    return scores


def metric_lines(scores: dict[str, float]) -> str:
    """``name=value`` lines, the format Katib's StdOut metrics collector parses."""
    return "\n".join(f"{name}={value:.6g}" for name, value in scores.items())
