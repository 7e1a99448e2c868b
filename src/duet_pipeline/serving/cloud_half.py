"""A method's cloud half as an MLflow pyfunc model: raw item ids in, each request's message out.

Any method whose head sends the device something (DUET's generated layers, LHUC's scales,
PPNet's or PEPNet's signal, POSO's gates, M2M's and APG's generated parts) is served the
same way: the model's ``message`` on each request's window.

Input: ``{"inputs": [{"history": [...], "encoding": "int8"}, ...]}``, one request per
element, each a list of raw item ids of the dataset's type (integers for MovieLens, strings
for a string-keyed log: :class:`StringKeyedCloudHalf`), most recent last, and the encoding
of the answer (float32 when absent; :mod:`.requests` says what happens to anything else).
Output, per request: ``message`` (the head's named tensors, each ``{"shape", "data",
"scale"}`` in the requested ``encoding``: decode with
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
import pandas as pd
import torch
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

from duet_pipeline.models.recommender import Recommender, load_model

from .encodings import encode_message
from .requests import HeadAnswer, HistoryRequest, RequestError, StringHistoryRequest, parse_histories


def weights_digest(bundle: dict[str, Any]) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(bundle["state_dict"].items()):
        digest.update(name.encode())
        digest.update(tensor.detach().contiguous().numpy().tobytes())
    return digest.hexdigest()[:12]


class CloudHalf(mlflow.pyfunc.PythonModel):
    """A method's cloud half: histories -> messages (a window with nothing known in it gets
    the head's cold-start message: DUET's static head, the others' answer to an empty window)."""

    def load_context(self, context: Any) -> None:
        # One request is a few small matrix products: a second thread only spins, and each
        # server worker is its own process (`make serve` starts one per core).
        torch.set_num_threads(1)
        with open(context.artifacts["model"], "rb") as file:
            bundle = pickle.load(file)
        index = pd.read_parquet(context.artifacts["item_index"])
        self.setup(load_model(bundle), index, (context.model_config or {}).get("version", weights_digest(bundle)))

    def setup(self, model: Recommender, item_index: pd.DataFrame, version: str) -> None:
        if not model.message_names():
            raise ValueError("this model's head sends the device nothing: there is no cloud half to serve "
                             "(export its device model only)")
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
        sent = {name: t.numpy() for name, t in self.model.message(torch.from_numpy(parsed.history)).items()}
        return [HeadAnswer(encoding=encoding, message=encode_message({name: t[row] for name, t in sent.items()}, encoding),
                           unknown_items=int(unknown), truncated=int(truncated), cold_start=int(cold_start),
                           model_version=self.version)
                for row, (encoding, unknown, truncated, cold_start) in enumerate(zip(
                    encodings, parsed.unknown_items, parsed.truncated, parsed.cold_start))]


class StringKeyedCloudHalf(CloudHalf):
    """The cloud half of a string-keyed dataset (``ids: string``): histories of string ids."""

    def predict(self, context: Any, model_input: list[StringHistoryRequest],
                params: dict[str, Any] | None = None) -> list[HeadAnswer]:
        # Not super().predict: MLflow validates each predict against its own type hints.
        return self.respond([request.history for request in model_input], [request.encoding for request in model_input])


def cloud_half_for(item_index: pd.DataFrame) -> CloudHalf:
    """The cloud half whose signature takes the item index's id type."""
    string_keyed = not pd.api.types.is_integer_dtype(item_index["raw_item_id"])
    return StringKeyedCloudHalf() if string_keyed else CloudHalf()


def log_cloud_half(bundle: dict[str, Any], item_index: pd.DataFrame, registered_name: str | None,
                   tags: dict[str, str]) -> Any:
    """Log the cloud half to the active MLflow run as a pyfunc model (signature from the type
    hints, input example) and, with ``registered_name``, register it as a new version tagged ``tags``."""
    version = weights_digest(bundle)
    with tempfile.TemporaryDirectory() as folder:
        model_path, index_path = Path(folder) / "model.pkl", Path(folder) / "item_index.parquet"
        model_path.write_bytes(pickle.dumps(bundle))
        item_index.to_parquet(index_path, index=False)
        example = [{"history": item_index["raw_item_id"].head(5).tolist()}]
        info = mlflow.pyfunc.log_model(
            name="cloud_half", python_model=cloud_half_for(item_index), input_example=example,
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
