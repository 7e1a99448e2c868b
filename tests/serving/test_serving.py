"""The device-cloud loop's two halves: the request policy, the pyfunc head generator
against the in-process one, the ONNX device model against PyTorch, and one real
``mlflow models serve`` round trip with every kind of bad request."""
from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import mlflow
import numpy as np
import pandas as pd
import pydantic
import pytest
import torch
from conftest import backbone_options, project_env

from duet_pipeline.models.backbones import BACKBONES
from duet_pipeline.processes import free_port
from duet_pipeline.models.recommender import ModelConfig, Recommender, model_bundle
from duet_pipeline.serving.device import OnnxDevice, check_device_model, export_device_model
from duet_pipeline.serving.encodings import ENCODINGS, decode_message, decode_tensor, encode_tensor, payload_bytes
from duet_pipeline.serving.app import nesting_depth
from duet_pipeline.serving.cloud_half import CloudHalf, log_cloud_half
from duet_pipeline.serving.requests import MAX_HISTORY, HistoryRequest, RequestError, parse_histories
from duet_pipeline.serving.serve import serve_command, serve_env
from duet_pipeline.samples import SampleTensors

DIM, SEQ_LEN, NUM_ITEMS = 8, 5, 30
RAW = {1000 + i: i for i in range(1, NUM_ITEMS + 1)}  # raw MovieLens id -> item index
ITEM_INDEX = pd.DataFrame({"raw_item_id": list(RAW), "item_index": list(RAW.values())})
HEAD_FLOATS = 2 * DIM * DIM + 2 * DIM

pytestmark = pytest.mark.usefixtures("light_torch")


def duet_bundle(backbone: str = "gru4rec") -> dict:
    torch.manual_seed(2)
    options = backbone_options(backbone, **({"num_heads": 2} if backbone == "sasrec" else {}))
    model = Recommender(ModelConfig(NUM_ITEMS, SEQ_LEN, backbone, dim=DIM, backbone_options=options,
                                    generator={"generator_hidden": 16, "num_generators": 2, "temperature": 1.0,
                                               "deviation_init_scale": 0.5}))
    return model_bundle(model, "duet+swa")


def test_the_request_policy():
    parsed = parse_histories([[1001, 1002], [1003, 99, 1004], list(range(1001, 1009)), [], [99, 98]], RAW, SEQ_LEN)
    assert parsed.history.tolist()[0] == [0, 0, 0, 1, 2]
    assert parsed.history.tolist()[1] == [0, 0, 0, 3, 4] and parsed.unknown_items.tolist() == [0, 1, 0, 0, 2]
    assert parsed.history.tolist()[2] == [4, 5, 6, 7, 8] and parsed.truncated.tolist() == [0, 0, 3, 0, 0]
    assert parsed.cold_start.tolist() == [0, 0, 0, 1, 1]
    with pytest.raises(RequestError, match="no requests"):
        parse_histories([], RAW, SEQ_LEN)


@pytest.mark.parametrize("bad", [{"history": "1001"}, {"history": [1.5]}, {"history": ["1001"]}, {"history": [[1001]]},
                                 {"history": None}, {"history": [True]}, {"items": [1001]},
                                 {"history": [1001], "user": 3}])
def test_a_request_that_is_not_a_list_of_integer_ids_is_refused(bad):
    with pytest.raises(pydantic.ValidationError):
        HistoryRequest.model_validate(bad)
    assert HistoryRequest.model_validate({"history": [1001, 5]}).history == [1001, 5]


def test_the_pyfunc_generator_equals_the_in_process_one(tmp_path):
    bundle = duet_bundle()
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        with mlflow.start_run():
            info = log_cloud_half(bundle, ITEM_INDEX, "duet-head-generator", {"dataset": "toy", "backbone": "gru4rec"})
        served = mlflow.pyfunc.load_model(info.model_uri)
        histories = [[1001, 1002, 1003], [1005], [1004, 1010, 1007, 1008, 1009, 1011], []]
        answer = [a.model_dump() for a in served.predict([{"history": h} for h in histories])]
        version = mlflow.MlflowClient().get_model_version("duet-head-generator", "1")
    finally:
        mlflow.set_tracking_uri(None)
    assert version.tags["backbone"] == "gru4rec" and version.tags["weights"] == answer[0]["model_version"]
    reference = CloudHalf()
    reference.setup(Recommender(ModelConfig(**bundle["config"])), ITEM_INDEX, "x")
    reference.model.load_state_dict(bundle["state_dict"])
    parsed = parse_histories(histories, RAW, SEQ_LEN)
    with torch.no_grad():
        sent = reference.model.message(torch.from_numpy(parsed.history))
        static = reference.model.head.static_head.weights()
    expected = [{name: t[row].numpy() for name, t in sent.items()} for row in range(3)]
    expected.append(dict(zip(("w1", "b1", "w2", "b2"), (t.detach().numpy() for t in static.tensors()))))  # empty: static head
    received = [decode_message(a["message"], a["encoding"]) for a in answer]
    assert {a["encoding"] for a in answer} == {"float32"}
    assert payload_bytes(answer[0]["message"]) == 4 * HEAD_FLOATS
    for got, want in zip(received, expected):
        assert got.keys() == want.keys()
        for name in want:
            np.testing.assert_allclose(got[name], want[name], rtol=1e-6, atol=1e-7)
    assert [a["truncated"] for a in answer] == [0, 0, 1, 0] and [a["cold_start"] for a in answer] == [0, 0, 0, 1]


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_an_encoded_tensor_comes_back_within_its_bound(encoding):
    """float32 exact; float16 within 2^-11 relative; int8 within half a step of its row's
    scale (max |row| / 127), with a zero row staying zero."""
    rng = np.random.default_rng(0)
    values = (rng.standard_normal((6, 9)) * np.array([[1e-3], [0.1], [1], [10], [0], [3]])).astype(np.float32)
    for tensor in (values, values[2], values[4]):
        sent = encode_tensor(tensor, encoding)
        back = decode_tensor(sent.model_dump(), encoding)
        assert back.shape == tensor.shape and back.dtype == np.float32
        if encoding == "float32":
            np.testing.assert_array_equal(back, tensor)
        elif encoding == "float16":
            np.testing.assert_allclose(back, tensor, rtol=2.0 ** -11, atol=0)
        else:
            rows = tensor.reshape(tensor.shape[0] if tensor.ndim > 1 else 1, -1)
            step = np.abs(rows).max(axis=1, keepdims=True) / 127
            assert (np.abs(back.reshape(rows.shape) - rows) <= step / 2 + 1e-7 * np.abs(rows)).all()
    sizes = {name: payload_bytes({"t": encode_tensor(values, name)}) for name in ("float32", "float16", "int8")}
    assert sizes == {"float32": 4 * 54, "float16": 2 * 54, "int8": 54 + 4 * 6}


def test_the_generator_answers_in_the_encoding_each_request_asks_for(tmp_path):
    bundle = duet_bundle()
    generator = CloudHalf()
    generator.setup(Recommender(ModelConfig(**bundle["config"])), ITEM_INDEX, "x")
    generator.model.load_state_dict(bundle["state_dict"])
    answers = generator.respond([[1001, 1002]] * 3, list(ENCODINGS))
    exact = decode_message(answers[0].message, "float32")
    for answer, encoding in zip(answers, ENCODINGS):
        assert answer.encoding == encoding
        for name, values in decode_message(answer.message, encoding).items():
            np.testing.assert_allclose(values, exact[name], atol=np.abs(exact[name]).max() / 127)
    # int8: a byte per value and a float32 scale per row (w1, w2: DIM rows each; b1, b2: one).
    assert [payload_bytes(a.message) for a in answers] == [4 * HEAD_FLOATS, 2 * HEAD_FLOATS,
                                                            HEAD_FLOATS + 4 * (2 * DIM + 2)]
    with pytest.raises(pydantic.ValidationError, match="encoding"):
        HistoryRequest.model_validate({"history": [1001], "encoding": "int4"})


def test_a_string_keyed_dataset_is_served_string_ids(tmp_path):
    """ids: string (ASINs): the generator takes histories of strings, with the same policy and
    the same heads as the integer-keyed one for the same items; integers are refused."""
    bundle = duet_bundle()
    asins = pd.DataFrame({"raw_item_id": [f"B{raw:09d}" for raw in RAW], "item_index": list(RAW.values())})
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        with mlflow.start_run():
            by_string = mlflow.pyfunc.load_model(log_cloud_half(bundle, asins, None, {}).model_uri)
            by_integer = mlflow.pyfunc.load_model(log_cloud_half(bundle, ITEM_INDEX, None, {}).model_uri)
        histories = [[1001, 1002, 1003], [1005, 99], []]
        as_strings = [[f"B{raw:09d}" for raw in h] for h in histories]
        answer = [a.model_dump() for a in by_string.predict([{"history": h} for h in as_strings])]
        expected = [a.model_dump() for a in by_integer.predict([{"history": h} for h in histories])]
        with pytest.raises(Exception, match="history"):
            by_string.predict([{"history": [1001, 1002]}])
    finally:
        mlflow.set_tracking_uri(None)
    assert [a["message"] for a in answer] == [a["message"] for a in expected]
    assert [a["unknown_items"] for a in answer] == [0, 1, 0] and [a["cold_start"] for a in answer] == [0, 0, 1]


def candidates_table(users: int = 4, per_user: int = 6, seed: int = 0) -> SampleTensors:
    """Each device's candidates, a run of rows sharing its (non-empty) window; the first a positive."""
    rng = np.random.default_rng(seed)
    history = np.zeros((users, SEQ_LEN), dtype=np.int64)
    for u in range(users):
        length = int(rng.integers(1, SEQ_LEN + 1))
        history[u, SEQ_LEN - length:] = rng.choice(np.arange(1, NUM_ITEMS + 1), size=length, replace=False)
    n = users * per_user
    return SampleTensors(torch.arange(n) // per_user, torch.from_numpy(np.repeat(history, per_user, axis=0)),
                         torch.from_numpy(rng.integers(1, NUM_ITEMS + 1, size=n)),
                         torch.from_numpy((np.arange(n) % per_user == 0).astype(np.float32)))


@pytest.mark.parametrize("backbone", sorted(BACKBONES))
def test_the_onnx_device_model_scores_as_pytorch(backbone, tmp_path):
    bundle = duet_bundle(backbone)
    path = tmp_path / "device.onnx"
    size = export_device_model(bundle, path)
    report = check_device_model(path, bundle, candidates_table())
    assert report["max_abs_difference"] < 1e-5 and report["devices"] == 4 and report["onnx_bytes"] == size
    # Any number of candidates (the candidate axis is dynamic), and a received head used as sent.
    flat = np.linspace(-0.5, 0.5, HEAD_FLOATS, dtype=np.float32)
    w1, b1, w2, b2 = np.split(flat, np.cumsum([DIM * DIM, DIM, DIM * DIM])[:3])
    message = {"w1": w1.reshape(DIM, DIM), "b1": b1, "w2": w2.reshape(DIM, DIM), "b2": b2}
    scores = OnnxDevice(path).score(np.array([0, 0, 3, 4, 5]), np.arange(1, 12), message)
    assert scores.shape == (11,) and np.isfinite(scores).all()


def post(url: str, body: bytes, content_type: str = "application/json") -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def records(*histories) -> bytes:
    return json.dumps({"inputs": [{"history": h} for h in histories]}).encode()


@contextlib.contextmanager
def served(bundle: dict, tmp_path) -> Iterator[str]:
    """The bundle's cloud half logged to a fresh store and served as `make serve` serves it;
    yields its URL, and stops the server's process group at the end."""
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(tracking)
    try:
        with mlflow.start_run():
            info = log_cloud_half(bundle, ITEM_INDEX, None, {})
    finally:
        mlflow.set_tracking_uri(None)
    port = free_port()
    env = serve_env({**project_env(tmp_path), "MLFLOW_TRACKING_URI": tracking, "OMP_NUM_THREADS": "1"}, info.model_uri)
    server = subprocess.Popen(serve_command("127.0.0.1", port), env=env, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/ping", timeout=2):
                    break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "the server did not come up"
                time.sleep(0.5)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def test_a_real_server_answers_and_refuses_bad_requests(tmp_path):
    port = None
    with served(duet_bundle(), tmp_path) as url:
        port = int(url.rsplit(":", 1)[1])
        status, good = post(f"{url}/invocations", records([1001, 1002, 99]))
        assert status == 200
        answer = good["predictions"][0]
        assert payload_bytes(answer["message"]) == 4 * HEAD_FLOATS and answer["unknown_items"] == 1
        bad = [b"", b"{not json", records("1001"), records([1.5, 2]), records([[1001]]), records(None), records([True]),
               records(), json.dumps({"inputs": [{"items": [1001]}]}).encode(),
               json.dumps({"dataframe_records": [{"history": [1001]}]}).encode(),
               json.dumps({"inputs": [{"history": [1001], "encoding": "int4"}]}).encode(),
               b"[" * 5000 + b"]" * 5000, records(list(range(1001, 1001 + MAX_HISTORY + 1)))]
        for body in bad:
            status, refused = post(f"{url}/invocations", body)
            assert 400 <= status < 500, (body, status, refused)
            assert refused.get("message"), body
        # Over the body limit: 413 from the declared length alone, before the body is even read.
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.putrequest("POST", "/invocations")
        connection.putheader("Content-Type", "application/json")
        connection.putheader("Content-Length", str(8 * 10**6))  # a million ids
        connection.endheaders()
        response = connection.getresponse()
        assert response.status == 413 and "bytes" in json.loads(response.read())["message"]
        connection.close()
        _, long = post(f"{url}/invocations", records(list(range(1001, 1001 + SEQ_LEN + 3))))
        assert long["predictions"][0]["truncated"] == 3
        _, empty = post(f"{url}/invocations", records([]))
        assert empty["predictions"][0]["cold_start"] == 1
        # Still serving, and the same answer as before the bad requests.
        status, again = post(f"{url}/invocations", records([1001, 1002, 99]))
        assert status == 200 and again == good


def test_a_method_other_than_duet_is_served_the_same_way(tmp_path):
    """LHUC's cloud half over HTTP: its scales, in the encoding asked for, equal to the model's;
    a bad request is refused, and the next good answer is unchanged."""
    from serving.test_heads import model_with  # test_heads reads this module's candidates

    model = model_with("lhuc", "gru4rec")
    with served(model_bundle(model, "lhuc"), tmp_path) as url:
        status, good = post(f"{url}/invocations", json.dumps(
            {"inputs": [{"history": [1001, 1002, 99], "encoding": "int8"}]}).encode())
        refused, _ = post(f"{url}/invocations", records("1001"))
        _, again = post(f"{url}/invocations", json.dumps(
            {"inputs": [{"history": [1001, 1002, 99], "encoding": "int8"}]}).encode())
    answer = good["predictions"][0]
    assert status == 200 and answer["encoding"] == "int8" and answer["unknown_items"] == 1
    with torch.no_grad():
        expected = model.message(torch.tensor([[0, 0, 0, 1, 2]]))
    received = decode_message(answer["message"], "int8")
    assert received.keys() == expected.keys() == {"scale1", "scale2"}
    for name, values in expected.items():
        np.testing.assert_allclose(received[name], values[0].numpy(), atol=np.abs(values.numpy()).max() / 127)
    assert 400 <= refused < 500 and again == good


def test_the_nesting_check_reads_brackets_outside_strings_only():
    assert nesting_depth(records([1001, 1002])) == 4
    assert nesting_depth(json.dumps({"inputs": [{"history": ["[[[[", "]]", 'a"[[']}]}).encode()) == 4
    assert nesting_depth(b"[" * 5000 + b"]" * 5000) == 5000
    assert nesting_depth(b"") == 0
