"""The cloud half's server: MLflow's scoring app (``mlflow models serve``'s) behind request limits.

A hostile or broken client must not cost the server more than a request's worth of work, nor
get a 500 for its own mistake. Before MLflow parses anything, ``/invocations`` answers

- 413 to a body over :data:`MAX_BODY_BYTES` (by its Content-Length, or as it streams in);
- 400 to a body nested deeper than :data:`MAX_NESTING` (MLflow's parser fails with a 500 on
  thousands of nested arrays).

A history longer than ``MAX_HISTORY`` ids is refused with 400 by the request's own
validation (:mod:`.requests`). Every other path, and every good request, is MLflow's.

Run by ``make serve`` through uvicorn, as ``mlflow models serve`` runs MLflow's app:
``uvicorn --factory duet_pipeline.serving.app:create_app`` with the model's local path in
MLflow's variable (:mod:`.serve`).
"""
from __future__ import annotations

import json
import os
import re
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np

# 64 KiB holds a request for dozens of devices; a history of MAX_HISTORY ids is ~10 KB.
MAX_BODY_BYTES = 64 * 1024
# {"inputs": [{"history": [...]}]} is four deep; a little room for clients' wrappers.
MAX_NESTING = 8
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')

Asgi = Callable[[dict, Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]], Awaitable[None]]


def nesting_depth(body: bytes) -> int:
    """The deepest nesting of arrays and objects in a JSON text, strings ignored (no parse)."""
    text = np.frombuffer(_STRING.sub(b'""', body), dtype=np.uint8)
    steps = np.isin(text, (ord("["), ord("{"))).astype(np.int32) - np.isin(text, (ord("]"), ord("}")))
    return int(np.cumsum(steps).max()) if len(steps) else 0


def guarded(app: Asgi, max_body_bytes: int = MAX_BODY_BYTES, max_nesting: int = MAX_NESTING) -> Asgi:
    """``app`` with ``/invocations`` bodies checked for size and nesting first."""

    async def guard(scope: dict, receive: Callable[[], Awaitable[dict]], send: Callable[[dict], Awaitable[None]]) -> None:
        if scope["type"] != "http" or scope.get("path") != "/invocations":
            return await app(scope, receive, send)
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_body_bytes:
            return await _refuse(send, 413, f"request body of {int(declared):,} bytes; at most {max_body_bytes:,}")
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > max_body_bytes:
                return await _refuse(send, 413, f"request body over {max_body_bytes:,} bytes")
        depth = nesting_depth(body)
        if depth > max_nesting:
            return await _refuse(send, 400, f"JSON nested {depth} deep; at most {max_nesting}")
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        return await app(scope, replay, send)

    return guard


async def _refuse(send: Callable[[dict], Awaitable[None]], status: int, message: str) -> None:
    code = "REQUEST_TOO_LARGE" if status == 413 else "INVALID_PARAMETER_VALUE"
    content = json.dumps({"error_code": code, "message": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(content)).encode())]})
    await send({"type": "http.response.body", "body": content})


def create_app() -> Asgi:
    """MLflow's scoring app for the model at MLflow's model-path variable, guarded."""
    from mlflow.pyfunc import scoring_server

    path = os.environ[scoring_server._SERVER_MODEL_PATH]  # the variable `mlflow models serve` sets
    return guarded(scoring_server.init(scoring_server.load_model_with_mlflow_config(path)))
