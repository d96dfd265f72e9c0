"""The ceiling of a Python HTTP endpoint on this machine: parse the JSON body, answer a fixed body.

Run by the serving benchmark as ``uvicorn benchmarks.peers.ceiling:app --workers <cores>``; no model, no
validation, so nothing served over Python HTTP on this machine can be faster.
"""

from __future__ import annotations

import json
from typing import Any

ANSWER = json.dumps({"model_name": "ceiling", "outputs": [{"name": "output-0", "shape": [1, 1], "datatype": "FP64",
                                                           "data": [5.0]}]}).encode()


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """ASGI application: read the whole body, parse it, answer ``ANSWER``."""
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    json.loads(body or b"{}")
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(ANSWER)).encode())]})
    await send({"type": "http.response.body", "body": ANSWER})
