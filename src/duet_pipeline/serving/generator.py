"""The head generator as an MLflow pyfunc model: raw item ids in, each request's head out.

Input: ``{"inputs": [{"history": [...], "encoding": "int8"}, ...]}``, one request per
element, each a list of raw item ids of the dataset's type (integers for MovieLens, strings
for a string-keyed log: :class:`StringKeyedHeadGenerator`), most recent last, and the
encoding of the answer (float32 when absent; :mod:`.requests` says what happens to anything
else). Output, per request: ``message`` (the generated head's ``w1``, ``b1``, ``w2``, ``b2``,
each ``{"shape", "data", "scale"}`` in the requested ``encoding``: decode with
:func:`duet_pipeline.serving.encodings.decode_message`), ``unknown_items``, ``truncated``,
``cold_start`` and ``model_version`` (a digest of the weights; the registry maps it to its run).

The signature comes from ``predict``'s type hints (pydantic models), so the scoring
server hands the parsed JSON straight to ``predict``: no DataFrame is built on the way in
or out, which halves the server's time per request (docs/benchmarks.md).

``mlflow models serve`` answers a request the policy refuses with 400 and the message,
and keeps serving: the model holds no state that a request changes.
"""
from __future__ import annotations

import hashlib
import pickle
import tempfile
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import torch
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

from duet_pipeline.models.layers import HeadWeights
from duet_pipeline.models.recommender import Recommender, load_model

from .encodings import encode_message
from .requests import HeadAnswer, HistoryRequest, RequestError, StringHistoryRequest, parse_histories


def weights_digest(bundle: dict[str, Any]) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(bundle["state_dict"].items()):
        digest.update(name.encode())
        digest.update(tensor.detach().contiguous().numpy().tobytes())
    return digest.hexdigest()[:12]


HEAD_TENSORS = ("w1", "b1", "w2", "b2")


def head_messages(heads: HeadWeights) -> list[dict[str, np.ndarray]]:
    """Per-request heads (B, ...) -> one message per request: w1, b1, w2, b2 as float32."""
    arrays = [t.detach().numpy().astype(np.float32) for t in heads.tensors()]
    return [dict(zip(HEAD_TENSORS, (array[row] for array in arrays))) for row in range(len(arrays[0]))]


def head_weights_of(message: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
    """A decoded message -> (w1, b1, w2, b2), as the device model takes them."""
    return tuple(np.asarray(message[name], dtype=np.float32) for name in HEAD_TENSORS)


class HeadGenerator(mlflow.pyfunc.PythonModel):
    """The cloud half of DUET: histories -> heads, with the static head for cold starts."""

    def load_context(self, context: Any) -> None:
        # One request is a few small matrix products: a second thread only spins, and each
        # server worker is its own process (`make serve` starts one per core).
        torch.set_num_threads(1)
        with open(context.artifacts["model"], "rb") as file:
            bundle = pickle.load(file)
        index = pd.read_parquet(context.artifacts["item_index"])
        self.setup(load_model(bundle), index, (context.model_config or {}).get("version", weights_digest(bundle)))

    def setup(self, model: Recommender, item_index: pd.DataFrame, version: str) -> None:
        if not model.generates_heads:
            raise ValueError("the head generator needs a model that generates heads (a DUET variant)")
        self.model, self.version = model.eval(), version
        self.item_index = dict(zip(item_index["raw_item_id"].tolist(), item_index["item_index"].tolist()))

    # The type hints are the signature: MLflow validates each request against HistoryRequest
    # (strict: 400 naming the request and the value) before predict runs.
    def predict(self, context: Any, model_input: list[HistoryRequest], params: dict[str, Any] | None = None) -> list[HeadAnswer]:
        return self.respond([request.history for request in model_input], [request.encoding for request in model_input])

    def respond(self, histories: list[list], encodings: list[str]) -> list[HeadAnswer]:
        """Validated histories -> answers; a request the policy refuses raises MLflow's 400."""
        try:
            parsed = parse_histories(histories, self.item_index, self.model.config.max_seq_len)
        except RequestError as error:
            raise MlflowException(str(error), error_code=INVALID_PARAMETER_VALUE) from None
        return self.answer(parsed, encodings)

    @torch.inference_mode()
    def answer(self, parsed: Any, encodings: list[str]) -> list[HeadAnswer]:
        heads = self.model.head_weights(torch.from_numpy(parsed.history))
        static = HeadWeights(*(t.unsqueeze(0) for t in self.model.head.static_head.weights().tensors()))
        static_message = head_messages(static)[0]
        messages = [static_message if cold else message
                    for message, cold in zip(head_messages(heads), parsed.cold_start.astype(bool))]
        return [HeadAnswer(encoding=encoding, message=encode_message(message, encoding), unknown_items=int(unknown),
                           truncated=int(truncated), cold_start=int(cold_start), model_version=self.version)
                for message, encoding, unknown, truncated, cold_start in zip(
                    messages, encodings, parsed.unknown_items, parsed.truncated, parsed.cold_start)]


class StringKeyedHeadGenerator(HeadGenerator):
    """The generator of a string-keyed dataset (``ids: string``): histories of string ids."""

    def predict(self, context: Any, model_input: list[StringHistoryRequest],
                params: dict[str, Any] | None = None) -> list[HeadAnswer]:
        # Not super().predict: MLflow validates each predict against its own type hints.
        return self.respond([request.history for request in model_input], [request.encoding for request in model_input])


def generator_for(item_index: pd.DataFrame) -> HeadGenerator:
    """The generator whose signature takes the item index's id type."""
    string_keyed = not pd.api.types.is_integer_dtype(item_index["raw_item_id"])
    return StringKeyedHeadGenerator() if string_keyed else HeadGenerator()


def log_generator(bundle: dict[str, Any], item_index: pd.DataFrame, registered_name: str | None,
                  tags: dict[str, str]) -> Any:
    """Log the generator to the active MLflow run as a pyfunc model (signature from the type
    hints, input example) and, with ``registered_name``, register it as a new version tagged ``tags``."""
    version = weights_digest(bundle)
    with tempfile.TemporaryDirectory() as folder:
        model_path, index_path = Path(folder) / "model.pkl", Path(folder) / "item_index.parquet"
        model_path.write_bytes(pickle.dumps(bundle))
        item_index.to_parquet(index_path, index=False)
        example = [{"history": item_index["raw_item_id"].head(5).tolist()}]
        info = mlflow.pyfunc.log_model(
            name="head_generator", python_model=generator_for(item_index), input_example=example,
            artifacts={"model": str(model_path), "item_index": str(index_path)}, model_config={"version": version},
            registered_model_name=registered_name, pip_requirements=_requirements(),
        )
    if registered_name is not None and info.registered_model_version is not None:
        client = mlflow.MlflowClient()
        for key, value in {**tags, "weights": version}.items():
            client.set_model_version_tag(registered_name, str(info.registered_model_version), key, value)
    return info


def _requirements() -> list[str]:
    """What the served model imports: this package and its pinned stack (the local
    environment provides them; listed so the model says what it needs)."""
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in ("mlflow", "torch", "pandas", "pyarrow")] + ["duet_pipeline"]
