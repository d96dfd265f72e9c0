"""``KfopsMLflowRuntime``: MLServer's MLflow runtime, with every request checked against the model's signature.

The stock runtime passes whatever it decoded to the model, so a missing feature or a NaN comes back as an HTTP 500
with a generic message. This subclass answers 400 with the reason (see :mod:`kfops_serving.validation`) and also accepts
one 2-D tensor (``shape [rows, features]``, columns in signature order) besides one tensor per column.
"""

from __future__ import annotations

from mlserver.codecs import NumpyCodec
from mlserver.errors import InferenceError
from mlserver.types import InferenceRequest, InferenceResponse
from mlserver_mlflow import MLflowRuntime
from mlserver_mlflow.codecs import TensorDictCodec

from kfops_serving.scoring import Scorer
from kfops_serving.validation import InvalidInput


class KfopsMLflowRuntime(MLflowRuntime):
    """MLflow pyfunc models over the Open Inference (v2) protocol, with input validation."""

    async def load(self) -> bool:
        """Load the model and prepare its scorer."""
        loaded = await super().load()
        try:
            self._scorer = Scorer(self._model)
        except ValueError as error:
            raise InferenceError(f"model {self.name}: {error}") from error
        return loaded

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        """Validate, score, encode; invalid input is an :class:`InferenceError` (HTTP 400)."""
        try:
            if len(payload.inputs) == 1 and len(payload.inputs[0].shape) == 2:
                rows = NumpyCodec.decode_input(payload.inputs[0])
            else:
                rows = self.decode_request(payload)
            predictions = self._scorer.score(rows)
        except InvalidInput as error:
            raise InferenceError(str(error)) from None
        except (ValueError, TypeError, KeyError) as error:
            raise InferenceError(f"cannot decode the request: {error}") from None
        return self.encode_response(predictions, default_codec=TensorDictCodec)
