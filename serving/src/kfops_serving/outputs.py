"""Turning a model's predictions into protocol outputs: what a classifier answers, and what a client may ask for.

* **Predictions.** Numbers are answered as FP64, the model's own bits (``predict``'s float64 values as JSON numbers or
  ``fp64_contents``). A model whose signature declares a text output (a classifier answering class labels, as the
  iris recipe's species) is answered as BYTES: its labels as text over REST, as ``bytes_contents`` over gRPC, with
  ``content_type: str`` (MLServer's own string codec), and its metadata declares BYTES.
* **Probabilities, when asked.** A classifier also answers its own ``predict_proba``: on v2 when the request names the
  output ``predict_proba`` among its requested outputs (``"outputs": [{"name": "predict_proba"}]``; REST and gRPC), as
  FP64 ``[rows, classes]`` with a ``classes`` parameter (the class order, a JSON list in a string); on v1 when
  ``meta.tags.predict_proba`` is ``true``, as rows of probabilities with ``names`` the classes. Asking a model that is
  not a classifier for probabilities, or for an output the model does not have, is a 400 (INVALID_ARGUMENT).

Imports only numpy: it runs inside MLServer and inside the seldon-core wrapper alike. Messages never repeat what the
client sent.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from kfops_serving.validation import InvalidInput

#: Name of the probabilities output (v2) and of the tag that asks for them (v1): scikit-learn's method name.
PROBABILITIES = "predict_proba"


def declares_labels(schema: Any) -> bool:
    """Whether an MLflow output schema (or None) declares text predictions: a string column or a text tensor.

    ``infer_signature`` on a classifier's ``predict`` of text labels gives an ``object`` tensor; a signature written by
    hand may give a ``string`` column. Either is answered as BYTES.
    """
    specs = list(getattr(schema, "inputs", None) or [])  # an MLflow Schema's specs, whether inputs or outputs
    if not specs:
        return False
    kind = specs[0].type
    if isinstance(kind, np.dtype):
        return kind.kind in "OUS"
    return getattr(kind, "name", None) == "string"


def requested(names: Sequence[str], prediction: str, classifier: bool) -> list[str]:
    """The outputs a v2 request asks for, in its order, each once; the prediction alone when it names none.

    Args:
        names: The names of the request's ``outputs``.
        prediction: The name of the model's prediction output (``output-0``).
        classifier: Whether the model gives class probabilities.

    Raises:
        InvalidInput: A name the model has no output for, or probabilities of a model that gives none.
    """
    if not names:
        return [prediction]
    unknown = sum(1 for name in names if name not in (prediction, PROBABILITIES))
    if unknown and classifier:
        raise InvalidInput(f"the model's outputs are {prediction} and {PROBABILITIES}: {unknown} of the requested "
                           "outputs are neither")
    if unknown:
        raise InvalidInput(f"the model has one output, {prediction}: {unknown} of the requested outputs are not it")
    if PROBABILITIES in names and not classifier:
        raise InvalidInput(f"this model gives no class probabilities (it is not a classifier): request only "
                           f"{prediction}")
    return list(dict.fromkeys(names))


def is_text(predictions: np.ndarray) -> bool:
    """Whether predictions are text (labels) rather than numbers."""
    if predictions.dtype.kind in "US":
        return True
    return predictions.dtype.kind == "O" and predictions.size > 0 and \
        all(isinstance(value, str) for value in predictions.ravel())


def prediction_output(name: str, predictions: np.ndarray, labels: bool) -> dict[str, Any]:
    """The v2 output (``ResponseOutput`` fields) of a request's predictions, ``[rows]``.

    Numbers are FP64, exactly the model's values; labels (``labels``, or predictions that are text) are BYTES, UTF-8.
    """
    predictions = np.asarray(predictions).ravel()
    if labels or is_text(predictions):
        return {"name": name, "shape": [int(predictions.shape[0])], "datatype": "BYTES",
                "data": [str(value).encode() for value in predictions.tolist()],
                "parameters": {"content_type": "str"}}
    return {"name": name, "shape": [int(predictions.shape[0])], "datatype": "FP64", "data": predictions.tolist()}


def probabilities_output(probabilities: np.ndarray, classes: Sequence[Any]) -> dict[str, Any]:
    """The v2 output of a classifier's ``predict_proba``: FP64 ``[rows, classes]`` (row-major) and the class order."""
    values = np.asarray(probabilities, dtype=np.float64)
    return {"name": PROBABILITIES, "shape": [int(values.shape[0]), int(values.shape[1])], "datatype": "FP64",
            "data": values.ravel().tolist(), "parameters": {"classes": json.dumps(list(classes))}}


def wants_probabilities(meta: dict[str, Any] | None) -> bool:
    """Whether a v1 request's (checked) ``meta`` asks for probabilities: ``meta.tags.predict_proba`` is ``true``.

    Raises:
        InvalidInput: The tag is there but not a boolean.
    """
    wanted = ((meta or {}).get("tags") or {}).get(PROBABILITIES, False)
    if not isinstance(wanted, bool):
        raise InvalidInput(f"meta.tags.{PROBABILITIES} must be true or false")
    return wanted


def class_names(classes: Sequence[Any]) -> list[str]:
    """The v1 answer's ``names`` for probabilities: the classes, as the strings Seldon's message holds."""
    return [str(value) for value in classes]
