"""Simulated devices against the served head generator, over HTTP on 127.0.0.1 only.

    python benchmarks/simulate_devices.py            # make simulate-devices
    python benchmarks/simulate_devices.py --devices 200 --requests 500 --concurrency 1,4,16

Needs a registered generator and its device model: `kedro run --pipelines=duet` then
`kedro run --pipelines=serving` (any dataset and backbone; the simulator reads them from the
registered version's tags). Starts `mlflow models serve` itself when nothing answers at
`serving.host:serving.port`, and stops it at the end.

1. Every device (or `--devices` of them, spread evenly) sends its current history (raw
   MovieLens ids, most recent last) to the server, asking for `--encoding` (float32,
   float16 or int8), decodes the message and scores its test candidates with the ONNX
   device model and the head it received: the AUC over those devices, set against the
   in-process DUET model's AUC on the same devices.
2. Load at each concurrency: `--requests` requests (devices' histories in turn) from that
   many client threads, bounded by `--time-limit` seconds: requests/s, round-trip p50 /
   p99, errors.

Writes the `device_simulator` section of docs/benchmarks.md and logs the figures to the
MLflow experiment `device_simulator`.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import subprocess
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import mlflow
import numpy as np

from common import REPO_ROOT, machine, previous_figures, today, write_section

from duet_pipeline.evaluation.metrics import compute_metrics
from duet_pipeline.methods.common import Devices, spread_evenly
from duet_pipeline.models.recommender import load_model
from duet_pipeline.project import load_parameters
from duet_pipeline.serving.config import ServingParams
from duet_pipeline.serving.device import OnnxDevice
from duet_pipeline.serving.encodings import ENCODINGS, decode_message, payload_bytes
from duet_pipeline.serving.generator import head_weights_of
from duet_pipeline.serving.serve import TRACKING_URI, latest_model_uri, serve_command, serve_env
from duet_pipeline.training.loop import predict
from duet_pipeline.training.tracking import RUNS_EXPERIMENT_TAGS
from duet_pipeline.training.tensors import RowsByUser, to_tensors

SECTION = "device_simulator"
TARGETS = {"round trip p50, concurrency 1": "< 5 ms", "round trip p99, concurrency 1": "< 20 ms",
           "requests/s, concurrency 16": ">= 300", "ONNX scoring per device": "< 1 ms",
           "errors": "0", "AUC, over HTTP + ONNX vs in-process": "equal to 1e-4"}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, default=0, help="devices in the AUC check (0: every test device)")
    parser.add_argument("--requests", type=int, default=1000, help="requests per concurrency level")
    parser.add_argument("--concurrency", default="1,4,16", help="client threads, comma-separated")
    parser.add_argument("--time-limit", type=float, default=60.0, help="seconds per concurrency level, at most")
    parser.add_argument("--encoding", choices=ENCODINGS, default="float32", help="the payload encoding devices ask for")
    return parser.parse_args()


def load_catalog(dataset: str, backbone: str) -> dict:
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(REPO_ROOT)
    with KedroSession.create(project_path=REPO_ROOT, runtime_params={"dataset": dataset, "backbone": backbone}) as s:
        context = s.load_context()
        catalog = context.catalog
        serving = ServingParams.from_params(context.params["serving"])
        return {"serving": serving, "test": catalog.load("test_samples"), "item_index": catalog.load("item_index"),
                "onnx": catalog.load("device_model_onnx"), "model": catalog.load(f"{serving.model_key}_model")}


_CONNECTIONS = threading.local()


def post(url: str, histories: list[list[int]], encoding: str) -> tuple[int, dict, float]:
    """One request on this thread's kept-alive connection (as a device keeps its
    connection open): status, answer and round-trip milliseconds."""
    address = urllib.parse.urlsplit(url)
    body = json.dumps({"inputs": [{"history": h, "encoding": encoding} for h in histories]}).encode()
    started = time.perf_counter()
    try:
        if getattr(_CONNECTIONS, "connection", None) is None:
            _CONNECTIONS.connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
        connection = _CONNECTIONS.connection
        connection.request("POST", address.path, body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        status, text = response.status, response.read()
        answer = json.loads(text) if status == 200 else {"message": text.decode(errors="replace")}
    except (OSError, http.client.HTTPException, json.JSONDecodeError) as error:
        _CONNECTIONS.connection = None
        answer, status = {"message": str(error)}, 0
    return status, answer, (time.perf_counter() - started) * 1000


def answering(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/ping", timeout=2):
            return True
    except OSError:
        return False


def start_server(serving: ServingParams, url: str) -> subprocess.Popen | None:
    """`mlflow models serve` of the latest registered version, unless one already answers."""
    if answering(url):
        return None
    env = serve_env({**os.environ, "MLFLOW_TRACKING_URI": TRACKING_URI})
    command = serve_command(latest_model_uri(serving.registered_model), serving.host, serving.port, serving.workers)
    server = subprocess.Popen(command, cwd=REPO_ROOT, env=env, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not answering(url):
        if server.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the server did not come up: {' '.join(command)}")
        time.sleep(0.5)
    return server


def registered_tags(name: str) -> dict[str, str]:
    client = mlflow.MlflowClient(TRACKING_URI)
    versions = client.search_model_versions(f"name = '{name}'")
    if not versions:
        raise SystemExit(f"no registered model '{name}': run `kedro run --pipelines=serving` first")
    return max(versions, key=lambda v: int(v.version)).tags


def auc_check(url: str, data: dict, devices: int, encoding: str) -> tuple[dict[str, float], list[list[int]]]:
    """Every chosen device over HTTP + ONNX, against the in-process model on the same devices."""
    test = to_tensors(data["test"])
    users, windows = Devices(test).current_histories()
    if devices:
        chosen = spread_evenly(devices, len(users))
        users, windows = users[chosen], windows[chosen]
    test = test.for_users(users)
    raw_of = dict(zip(data["item_index"]["item_index"], data["item_index"]["raw_item_id"]))
    histories = [[int(raw_of[i]) for i in w.tolist() if i > 0] for w in windows]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "device_model.onnx"
        path.write_bytes(data["onnx"])
        device = OnnxDevice(path)
    rows_of = RowsByUser(test.user)
    scores = np.zeros(len(test), dtype=np.float32)
    device_ms, errors, payload = [], 0, 0
    for k, user in enumerate(users.tolist()):
        status, answer, _ = post(f"{url}/invocations", [histories[k]], encoding)
        if status != 200:
            errors += 1
            continue
        message = answer["predictions"][0]["message"]
        payload = payload_bytes(message)
        rows = rows_of(user)
        started = time.perf_counter()
        head = head_weights_of(decode_message(message, encoding))
        scores[rows.numpy()] = device.score(windows[k].numpy(), test.target[rows].numpy(), head)
        device_ms.append((time.perf_counter() - started) * 1000)
    served = compute_metrics(test.user.numpy(), test.label.numpy(), scores)["auc"]
    in_process = compute_metrics(test.user.numpy(), test.label.numpy(), predict(load_model(data["model"]), test))["auc"]
    return ({"auc_served": served, "auc_in_process": in_process, "devices": float(len(users)),
             "auc_errors": float(errors), "payload_bytes": float(payload),
             "onnx_ms_p50": float(np.percentile(device_ms, 50)), "onnx_bytes": float(len(data["onnx"]))},
            histories)


def load_level(url: str, histories: list[list[int]], concurrency: int, requests: int, limit: float,
               encoding: str) -> dict[str, float]:
    """``requests`` single-history requests from ``concurrency`` threads, stopped at ``limit`` s."""
    deadline = time.monotonic() + limit

    def one(k: int) -> tuple[int, float] | None:
        if time.monotonic() > deadline:
            return None
        status, _, ms = post(f"{url}/invocations", [histories[k % len(histories)]], encoding)
        return status, ms

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = [r for r in pool.map(one, range(requests)) if r is not None]
    wall = time.perf_counter() - started
    latencies = [ms for status, ms in results if status == 200]
    return {"requests": float(len(results)), "errors": float(sum(status != 200 for status, _ in results)),
            "requests_per_second": len(results) / wall,
            "p50_ms": float(np.percentile(latencies, 50)) if latencies else float("nan"),
            "p99_ms": float(np.percentile(latencies, 99)) if latencies else float("nan")}


def main() -> None:
    args = parse_args()
    os.chdir(REPO_ROOT)
    os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "true")
    tags = registered_tags(ServingParams.from_params(load_parameters(REPO_ROOT)["serving"]).registered_model)
    data = load_catalog(tags["dataset"], tags["backbone"])
    serving = data["serving"]
    url = f"http://{serving.host}:{serving.port}"
    server = start_server(serving, url)
    try:
        check, histories = auc_check(url, data, args.devices, args.encoding)
        levels = {c: load_level(url, histories, c, args.requests, args.time_limit, args.encoding)
                  for c in (int(c) for c in args.concurrency.split(","))}
    finally:
        if server is not None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
    report(args, tags, serving, check, levels)


def report(args: argparse.Namespace, tags: dict[str, str], serving: ServingParams, check: dict[str, float],
           levels: dict[int, dict]) -> None:
    errors = check["auc_errors"] + sum(level["errors"] for level in levels.values())
    rows = [("AUC, over HTTP + ONNX vs in-process",
             f"{check['auc_served']:.6f} vs {check['auc_in_process']:.6f} ({check['devices']:.0f} devices)")]
    for c, level in levels.items():
        rows += [(f"round trip p50, concurrency {c}", f"{level['p50_ms']:.2f} ms"),
                 (f"round trip p99, concurrency {c}", f"{level['p99_ms']:.2f} ms"),
                 (f"requests/s, concurrency {c}", f"{level['requests_per_second']:.0f} ({level['requests']:.0f} requests)")]
    rows += [("ONNX scoring per device", f"{check['onnx_ms_p50']:.3f} ms p50 (100 candidates)"),
             ("ONNX device model size", f"{check['onnx_bytes'] / 1e6:.2f} MB"),
             (f"payload per request ({args.encoding})", f"{check['payload_bytes']:.0f} bytes"), ("errors", f"{errors:.0f}")]
    previous = previous_figures(SECTION)
    table = ["| measure | target | this run | previous run |", "|---|---|---|---|"]
    table += [f"| {m} | {TARGETS.get(m, '')} | {f} | {previous.get(m, '-')} |" for m, f in rows]
    command = "python benchmarks/simulate_devices.py" + "".join(
        f" --{k.replace('_', '-')} {v}" for k, v in vars(args).items())
    write_section(SECTION, "\n".join([
        "## Device simulator (issue 13)", "",
        f"Command: `{command}` (`make simulate-devices`). Served model: registered `{tags.get('method')}` on "
        f"{tags.get('dataset')} / {tags.get('backbone')}, `mlflow models serve` on 127.0.0.1 ({serving.workers} workers). "
        f"Machine: {machine()}. Date: {today()}.", "", *table]))
    mlflow.set_tracking_uri(TRACKING_URI)
    if mlflow.get_experiment_by_name("device_simulator") is None:
        mlflow.create_experiment("device_simulator", tags=RUNS_EXPERIMENT_TAGS)
    mlflow.set_experiment("device_simulator")
    with mlflow.start_run():
        mlflow.log_params({**tags, **vars(args)})
        mlflow.log_metrics({**check, "errors": errors, **{f"c{c}_{k}": v for c, level in levels.items()
                                                           for k, v in level.items()}})
    print("\n".join(table))


if __name__ == "__main__":
    main()
