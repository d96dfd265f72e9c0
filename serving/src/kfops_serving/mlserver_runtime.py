"""``KfopsMLflowRuntime``: MLServer's MLflow runtime, where every request is answered on its own merits.

Each request is decoded and validated on its own (see :func:`decode`): anything malformed is a 400 naming the problem
before it can meet another request. A request's answer is the model's own ``predict`` for exactly its rows, to the last
bit (see :mod:`kfops_serving.scoring`). For a model whose rows score the same alone as together (trees), valid requests
that arrived together are scored in one call (:class:`Coalescer`): rows concatenated, predicted once, split back. Any
other model (linear ones: BLAS rounds a row by its neighbours) is scored one request at a time. MLServer's own adaptive
batching (which merges requests before anyone validates them, so one bad request fails or corrupts its neighbours)
stays off.

Answers carry the output the model's metadata declares (``output-0``, ``[rows]``): FP64 for numbers, BYTES for a
classifier's labels; a classifier also answers its ``predict_proba`` when the request asks for that output (see
:mod:`kfops_serving.outputs`).
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np
from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from mlserver.errors import InferenceError, MLServerError, ModelNotFound
from mlserver.handlers import custom_handler
from mlserver.types import InferenceRequest, InferenceResponse, MetadataModelResponse, ResponseOutput
from mlserver_mlflow import MLflowRuntime

from kfops_serving import mlflow_scoring, outputs
from kfops_serving.scoring import Scorer
from kfops_serving.validation import MAX_ROWS, InvalidInput, check_numbers, kind_of

#: Open Inference datatypes a feature may arrive as (all converted to float64, as the model's signature has it).
NUMERIC_DATATYPES = frozenset({"FP64", "FP32", "FP16", "INT64", "INT32", "INT16", "INT8",
                               "UINT64", "UINT32", "UINT16", "UINT8"})
#: Most rows scored in one model call when requests are coalesced (a bigger request is scored alone).
MAX_COALESCED_ROWS = 4096


def _nested(values: list[Any]) -> Any:
    for value in values:
        if isinstance(value, list):
            yield from _nested(value)
        else:
            yield value


#: Finite range of each floating-point datatype and the integer range of each integer datatype.
_FLOAT_RANGE = {"FP64": float(np.finfo(np.float64).max), "FP32": float(np.finfo(np.float32).max),
                "FP16": float(np.finfo(np.float16).max)}
_INT_RANGE = {**{f"INT{bits}": (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) for bits in (8, 16, 32, 64)},
              **{f"UINT{bits}": (0, 2 ** bits - 1) for bits in (8, 16, 32, 64)}}


def _shape(shape: list[int], index: int) -> list[int]:
    if any((not isinstance(d, int)) or d < 0 for d in shape):
        raise InvalidInput(f"inputs[{index}] has a shape with a negative dimension: every dimension must be a count "
                           "(no -1 in a request: the shape says how many values the data holds)")
    return shape


def decode(payload: InferenceRequest, columns: list[str]) -> np.ndarray:
    """A request's rows as a float64 array ``(rows, features)`` in the model's column order.

    Accepted: one 2-D tensor ``[rows, features]`` (columns in signature order), or one tensor per column, named as
    the signature's columns, each ``[rows]`` or ``[rows, 1]``. Values must be JSON numbers of the tensor's datatype:
    within its range, integers for an integer type, never text or booleans (as on v1). Messages refer to tensors by
    position and never repeat what the client sent.

    Raises:
        InvalidInput: Anything else, naming what is wrong.
    """
    inputs = payload.inputs
    if not inputs:
        raise InvalidInput("the request has no inputs: send one 2-D tensor [rows, features] or one tensor per "
                           "feature")
    for index, tensor in enumerate(inputs):
        if tensor.datatype not in NUMERIC_DATATYPES:
            shown = tensor.datatype if tensor.datatype in ("BOOL", "BYTES") else "another datatype"
            raise InvalidInput(f"inputs[{index}] has {shown}: features are numbers (FP64, FP32 or an integer type)")
    if len(inputs) == 1 and len(inputs[0].shape) == 2:
        tensor = inputs[0]
        rows, width = _shape(list(tensor.shape), 0)
        if width != len(columns):
            raise InvalidInput(f"inputs[0] has {width} features per row; the model takes "
                               f"{len(columns)} ({', '.join(columns)})")
        _row_count(rows)
        values = _values(tensor, 0, rows * width)
        return check_numbers(values.reshape(rows, width), columns)
    by_name = {tensor.name: tensor for tensor in inputs}
    if len(by_name) != len(inputs) or set(by_name) != set(columns):
        raise InvalidInput(f"send one 2-D tensor [rows, {len(columns)}], or one tensor per feature, each named "
                           f"once, as {', '.join(columns)}")
    positions = {tensor.name: index for index, tensor in enumerate(inputs)}
    counts = set()
    for name, tensor in by_name.items():
        shape = _shape(list(tensor.shape), positions[name])
        if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1):
            raise InvalidInput(f"inputs[{positions[name]}] ({name}) has {len(shape)} dimensions: a feature's "
                               "tensor is [rows] or [rows, 1]")
        counts.add(shape[0])
    if len(counts) != 1:
        raise InvalidInput(f"the feature tensors have different row counts: {sorted(counts)}")
    rows = _row_count(counts.pop())
    return check_numbers(np.column_stack([_values(by_name[c], positions[c], rows) for c in columns]) if rows else
                         np.empty((0, len(columns))), columns)


def _row_count(rows: int) -> int:
    if rows > MAX_ROWS:
        raise InvalidInput(f"the batch has {rows} rows, more than the {MAX_ROWS} one request may carry")
    return rows


def _values(tensor: Any, index: int, expected: int) -> np.ndarray:
    """A tensor's data as float64, checked against the count its shape promises and the range of its datatype."""
    data = getattr(tensor.data, "root", tensor.data)
    if not isinstance(data, list):
        raise InvalidInput(f"inputs[{index}]: data must be a list of numbers")
    values = list(_nested(data))
    if len(values) != expected:
        raise InvalidInput(f"inputs[{index}] has shape {list(tensor.shape)} ({expected} values) but "
                           f"{len(values)} values")
    kinds = {type(value) for value in values}
    if kinds <= {float} and tensor.datatype == "FP64":
        return np.asarray(values, dtype=np.float64)
    datatype = tensor.datatype
    integral = datatype in _INT_RANGE
    low, high = _INT_RANGE[datatype] if integral else (-_FLOAT_RANGE[datatype], _FLOAT_RANGE[datatype])
    for position, value in enumerate(values):
        kind = type(value)
        if kind is int or (kind is float and not integral):
            if low <= value <= high or (kind is float and value != value):  # NaN: refused later, by name
                continue
            if kind is float and abs(value) == float("inf"):
                continue
            problem = f"outside the range of {datatype}"
        elif kind is float:
            problem = f"not an integer, which {datatype} requires"
        else:
            problem = f"{kind_of(value)}, not a number"
        raise InvalidInput(f"inputs[{index}] value {position} is {problem}")
    return np.asarray(values, dtype=np.float64)


class Coalescer:
    """Scores validated batches that arrive together in one call of ``predict``, each getting its own rows back.

    Nothing waits for company: a batch is scored as soon as the model is free, together with whatever other
    validated batches queued up while it was busy. If a combined call fails, each batch is scored alone, so a failure
    stays with the batch that caused it.
    """

    def __init__(self, predict: Callable[[np.ndarray], np.ndarray], max_rows: int = MAX_COALESCED_ROWS) -> None:
        self.predict = predict
        self.max_rows = max_rows
        self.pending: deque[tuple[np.ndarray, asyncio.Future[np.ndarray]]] = deque()
        self.wakeup: asyncio.Event | None = None
        self.worker: asyncio.Task[None] | None = None
        self.calls = 0  # model calls made (the tests check that requests were really coalesced)

    async def score(self, rows: np.ndarray) -> np.ndarray:
        """The predictions for ``rows`` (validated), scored with what else is queued."""
        loop = asyncio.get_running_loop()
        if self.worker is None or self.worker.done():
            self.wakeup = asyncio.Event()
            self.worker = loop.create_task(self._run())
        assert self.wakeup is not None
        future: asyncio.Future[np.ndarray] = loop.create_future()
        self.pending.append((rows, future))
        self.wakeup.set()
        return await future

    async def _run(self) -> None:
        assert self.wakeup is not None
        while True:
            await self.wakeup.wait()
            self.wakeup.clear()
            # Let requests already read off the sockets finish their validation and join (no timer: no added wait).
            await asyncio.sleep(0)
            while self.pending:
                batch = [self.pending.popleft()]
                total = batch[0][0].shape[0]
                while self.pending and total + self.pending[0][0].shape[0] <= self.max_rows:
                    batch.append(self.pending.popleft())
                    total += batch[-1][0].shape[0]
                self._score(batch)

    def _score(self, batch: list[tuple[np.ndarray, asyncio.Future[np.ndarray]]]) -> None:
        self.calls += 1
        try:
            predictions = np.asarray(self.predict(np.concatenate([rows for rows, _ in batch]))).ravel()
        except Exception:  # one batch broke the combined call: score each alone
            for rows, future in batch:
                self._score_alone(rows, future)
            return
        start = 0
        for rows, future in batch:
            if not future.done():
                future.set_result(predictions[start:start + rows.shape[0]])
            start += rows.shape[0]

    def _score_alone(self, rows: np.ndarray, future: asyncio.Future[np.ndarray]) -> None:
        self.calls += 1
        try:
            result = np.asarray(self.predict(rows)).ravel()
        except Exception as error:  # handed to the request it belongs to
            if not future.done():
                future.set_exception(error)
            return
        if not future.done():
            future.set_result(result)


class KfopsMLflowRuntime(MLflowRuntime):
    """MLflow pyfunc models over the Open Inference (v2) protocol: validated, isolated, coalesced."""

    async def load(self) -> bool:
        """Load the model and prepare its scorer and coalescer."""
        guard_rest_errors()
        loaded = await super().load()
        try:
            self._scorer = Scorer(self._model)
        except ValueError as error:
            raise InferenceError(f"model {self.name}: {error}") from error
        declared = self.outputs[0] if self.outputs else None
        self._output_name = declared.name if declared else "output-0"
        # A text output (a classifier's labels) is answered, and declared, as BYTES; numbers as FP64.
        self._labels = outputs.declares_labels(self._model.metadata.get_output_schema())
        if declared is not None and self._labels:
            declared.datatype = "BYTES"
        self._coalescer = Coalescer(self._scorer.predict_validated)
        return loaded

    async def metadata(self) -> MetadataModelResponse:
        """MLServer's metadata, listing the version this runtime serves (MLServer lists only ``settings.versions``)."""
        answer = await super().metadata()
        if self.version and self.version not in answer.versions:
            answer.versions = [*answer.versions, self.version]
        return answer

    @custom_handler(rest_path="/invocations")
    async def invocations(self, request: Request) -> Response:
        """MLflow's scoring protocol, validated as every other request (see :mod:`kfops_serving.mlflow_scoring`).

        Replaces the MLflow runtime's own handler, which skipped kfops' validation (non-JSON bodies, text and
        objects without a known key were 500s) and knew only the signature's column names.
        """
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > mlflow_scoring.MAX_BODY:
            return _scoring_error(413, f"the body may be at most {mlflow_scoring.MAX_BODY} bytes", "TOO_LARGE")
        body = await request.body()
        try:
            if len(body) > mlflow_scoring.MAX_BODY:
                raise InvalidInput(f"the body may be at most {mlflow_scoring.MAX_BODY} bytes")
            rows = mlflow_scoring.parse(body, request.headers.get("content-type", ""), self._scorer.columns)
        except mlflow_scoring.UnsupportedMediaType as unsupported:
            return _scoring_error(415, str(unsupported), "UNSUPPORTED_MEDIA_TYPE")
        except InvalidInput as invalid:
            return _scoring_error(400, str(invalid))
        return Response(content=mlflow_scoring.answer(await self._score(rows)), media_type="application/json")

    async def _score(self, rows: np.ndarray) -> np.ndarray:
        if self._scorer.row_independent:
            return await self._coalescer.score(rows)
        # a row's bits may depend on its neighbours: score this request alone, as its own predict would
        return np.asarray(self._scorer.predict_validated(rows)).ravel()

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        """Validate this request alone, then score it (coalesced with others); invalid input is a 400."""
        try:
            wanted = outputs.requested([o.name for o in payload.outputs or []], self._output_name,
                                       classifier=self._scorer.classes is not None)
            rows = decode(payload, self._scorer.columns)
            if rows.shape[0] == 0:
                raise InvalidInput("the batch is empty: send at least one row")
            if rows.shape[0] > MAX_ROWS:
                raise InvalidInput(f"the batch has {rows.shape[0]} rows, more than the {MAX_ROWS} one request may "
                                   "carry")
        except InvalidInput as error:
            raise InferenceError(str(error)) from None
        answers = []
        for name in wanted:
            if name == outputs.PROBABILITIES:
                assert self._scorer.classes is not None  # outputs.requested refused it otherwise
                answer = outputs.probabilities_output(self._scorer.probabilities(rows), self._scorer.classes)
            else:
                answer = outputs.prediction_output(name, await self._score(rows), self._labels)
            answers.append(ResponseOutput(**answer))
        return InferenceResponse(model_name=self.name, model_version=self.version, id=payload.id, outputs=answers)


def _scoring_error(status: int, message: str, code: str = "BAD_REQUEST") -> Response:
    return Response(content=mlflow_scoring.error(message, code), status_code=status, media_type="application/json")


def _is_json(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (media_type.startswith("application/") and media_type.endswith("+json"))


async def _invalid_request(request: Request, error: RequestValidationError) -> Response:
    """FastAPI's 422 for a body that is not an Open Inference request, as a 400 that does not repeat the body.

    FastAPI's own answer quotes what the client sent (its ``input`` field: a whole body, a bad datatype string).
    FastAPI 0.132 and later parse a body as JSON only when its Content-Type says so (a CSRF guard: a page can post
    text/plain cross-site without a preflight); anything else is answered 415 naming the header to send.
    """
    if not _is_json(request.headers.get("content-type", "")):
        message = "an Open Inference request body is JSON: send it with the header Content-Type: application/json"
        return Response(content=json.dumps({"error": message}), status_code=415, media_type="application/json")
    problems = error.errors()
    first = problems[0] if problems else {}
    if first.get("type") == "json_invalid":
        message = "the body is not valid JSON (or nests deeper than 1024 levels, or holds a number beyond a double)"
    else:
        where = ".".join(str(part) for part in first.get("loc", ()) if part != "body") or "the body"
        message = f"the request is not an Open Inference request: {where}: {first.get('msg', 'invalid')}"
    return Response(content=json.dumps({"error": message}), status_code=400, media_type="application/json")


async def _mlserver_error(_request: Request, error: MLServerError) -> Response:
    """MLServer's own errors; a model or version that is not served is named without repeating the path."""
    message = "no such model or version is served here" if isinstance(error, ModelNotFound) else str(error)
    return Response(content=json.dumps({"error": message}), status_code=error.status_code,
                    media_type="application/json")


def guard_rest_errors() -> None:
    """Put kfops' answers in front of FastAPI's and MLServer's where theirs repeat the request.

    MLServer builds its FastAPI app before it imports a runtime and offers no hook for exception handlers, so the app
    is found among the live objects (MLServer 1.7.1's ``RESTServer._app``) and its middleware stack rebuilt.
    """
    import gc

    from mlserver.rest.server import RESTServer

    for server in [o for o in gc.get_objects() if isinstance(o, RESTServer)]:
        app = server._app
        if app.exception_handlers.get(RequestValidationError) is _invalid_request:
            continue
        app.exception_handlers[RequestValidationError] = _invalid_request
        app.exception_handlers[MLServerError] = _mlserver_error
        app.middleware_stack = None  # rebuilt with these handlers on the next request


#: Open Inference gRPC: the ``InferTensorContents`` field each datatype's values belong in (FP16 has none: raw only),
#: and each datatype's size in ``raw_input_contents``.
_CONTENTS_FIELD = {"FP64": "fp64_contents", "FP32": "fp32_contents", "INT8": "int_contents", "INT16": "int_contents",
                   "INT32": "int_contents", "INT64": "int64_contents", "UINT8": "uint_contents",
                   "UINT16": "uint_contents", "UINT32": "uint_contents", "UINT64": "uint64_contents",
                   "BOOL": "bool_contents", "BYTES": "bytes_contents"}
_RAW_SIZE = {"FP64": 8, "FP32": 4, "FP16": 2, "INT64": 8, "INT32": 4, "INT16": 2, "INT8": 1, "UINT64": 8,
             "UINT32": 4, "UINT16": 2, "UINT8": 1, "BOOL": 1}


def check_grpc_request(request: Any) -> None:
    """What the Open Inference gRPC spec requires of a ``ModelInferRequest``'s tensors, before MLServer decodes it.

    MLServer takes values from whichever contents field is filled (fp32 values in an FP64 tensor are scored),
    ignores ``raw_input_contents`` entries beyond the inputs, and fails with INTERNAL on raw bytes that do not fill the
    shape. Here each is INVALID_ARGUMENT.

    Raises:
        InvalidInput: Naming the tensor by position.
    """
    raw = list(request.raw_input_contents)
    if raw and len(raw) != len(request.inputs):
        raise InvalidInput(f"raw_input_contents has {len(raw)} entries for {len(request.inputs)} inputs: one each")
    for index, tensor in enumerate(request.inputs):
        filled = [f.name for f, _ in tensor.contents.ListFields()] if tensor.HasField("contents") else []
        if raw:
            if filled:
                raise InvalidInput(f"inputs[{index}] has contents and raw_input_contents: send one or the other")
            size = _RAW_SIZE.get(tensor.datatype)
            count = 1
            for dimension in tensor.shape:
                count *= max(int(dimension), 0)
            if size is None or len(raw[index]) != count * size:
                raise InvalidInput(f"inputs[{index}]: its raw_input_contents entry holds {len(raw[index])} bytes, "
                                   "not the shape's count of values of its datatype")
        elif any(name != _CONTENTS_FIELD.get(tensor.datatype) for name in filled):
            raise InvalidInput(f"inputs[{index}]: its values are in a contents field other than its datatype's")


def _guard_grpc_decoding() -> None:
    from mlserver.grpc.converters import ModelInferRequestConverter

    decode_request = ModelInferRequestConverter.to_types
    if getattr(decode_request, "kfops_checked", False):
        return

    def to_types(request: Any) -> InferenceRequest:
        try:
            check_grpc_request(request)
        except InvalidInput as error:
            raise InferenceError(str(error)) from None
        return decode_request(request)

    to_types.kfops_checked = True  # type: ignore[attr-defined]
    # Looked up on the class at every request (mlserver.grpc.servicers._InsertHeaders), so this holds from now on.
    ModelInferRequestConverter.to_types = staticmethod(to_types)


def _quiet_model_not_found(self: ModelNotFound, name: str, version: str | None = None) -> None:
    # MLServer's message repeats the requested name and version (REST path, gRPC fields).
    MLServerError.__init__(self, "no such model or version is served here", 404)


ModelNotFound.__init__ = _quiet_model_not_found
_guard_grpc_decoding()
