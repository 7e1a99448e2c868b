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

`--method` picks the served method (any with a cloud half; default `serving.method`),
`--encoding` the payload encoding.

`--replay --policy <p> --budget <b>` (PROTOCOL section 10) replays instead: the registered
version must come from the replay split (`kedro run --pipelines=replay`, then `kedro run
--pipelines=serving --params=features.split=replay`). Every device replays its stream step
by step: it requests at step 1, then before each step its policy (replay/device.py, the
learned one in ONNX Runtime) decides from what it holds whether to request a fresh head
over HTTP; it scores each step with the ONNX device half and the head it holds. Reported
beside the in-process replay of the same policy, threshold and model: AUC over all (device,
step) candidate sets, requests sent, bytes received, request latency and decision time.
Each run replaces its (method, policy, budget, encoding) row of
docs/results/device_simulator_replay.csv and the `device_simulator_replay` table of
docs/benchmarks.md. Each run replaces its (method, encoding) row of
docs/results/device_simulator.csv, rewrites the `device_simulator` table of
docs/benchmarks.md from it and logs the figures to the MLflow experiment `device_simulator`.
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
from sklearn.metrics import roc_auc_score

from common import REPO_ROOT, machine, today, write_section

from duet_pipeline.evaluation.metrics import compute_metrics
from duet_pipeline.experiments.grid import code_version
from duet_pipeline.methods.common import Devices, spread_evenly
from duet_pipeline.models.recommender import load_model
from duet_pipeline.project import load_parameters
from duet_pipeline.replay.device import DevicePolicy, seen_auc
from duet_pipeline.replay.evaluate import ReplayParams, replay_method
from duet_pipeline.replay.learned import load_policy
from duet_pipeline.replay.policies import POLICIES, random_urge
from duet_pipeline.replay.streams import streams_from_samples
from duet_pipeline.serving.config import ServingParams
from duet_pipeline.serving.device import OnnxDevice
from duet_pipeline.serving.encodings import ENCODINGS, decode_message, payload_bytes
from duet_pipeline.serving.serve import TRACKING_URI, latest_model_uri, serve_command, serve_env
from duet_pipeline.training.loop import predict
from duet_pipeline.training.tracking import RUNS_EXPERIMENT_TAGS
from duet_pipeline.training.tensors import RowsByUser, to_tensors

SECTION = "device_simulator"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, default=0, help="devices in the AUC check (0: every test device)")
    parser.add_argument("--requests", type=int, default=1000, help="requests per concurrency level")
    parser.add_argument("--concurrency", default="1,4,16", help="client threads, comma-separated")
    parser.add_argument("--time-limit", type=float, default=60.0, help="seconds per concurrency level, at most")
    parser.add_argument("--encoding", choices=ENCODINGS, default="float32", help="the payload encoding devices ask for")
    parser.add_argument("--method", default=None, help="the served method (default: serving.method in conf/)")
    parser.add_argument("--replay", action="store_true", help="replay every device's stream (PROTOCOL section 10)")
    parser.add_argument("--policy", choices=POLICIES, default="learned", help="with --replay: the request policy")
    parser.add_argument("--budget", type=budget_share, default=0.2, help="with --replay: the request budget in [0, 1]")
    return parser.parse_args()


def budget_share(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"--budget {text}: a request rate in [0, 1]")
    return value


def load_catalog(dataset: str, backbone: str, method: str, split: str = "leave_one_out") -> dict:
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(REPO_ROOT)
    runtime = {"dataset": dataset, "backbone": backbone, "features": {"split": split}}
    with KedroSession.create(project_path=REPO_ROOT, runtime_params=runtime) as s:
        context = s.load_context()
        catalog = context.catalog
        serving = ServingParams.from_params({**context.params["serving"], "method": method})
        data = {"serving": serving, "test": catalog.load("test_samples"), "item_index": catalog.load("item_index"),
                "onnx": catalog.load(f"{serving.method_key}_device_onnx"),
                "model": catalog.load(f"{serving.model_key}_model"), "replay": context.params["replay"]}
        if split == "replay":
            data["policy"] = catalog.load(f"{serving.method_key}_request_policy_model")
            data["policy_onnx"] = catalog.load(f"{serving.method_key}_policy_onnx")
        return data


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
    env = serve_env({**os.environ, "MLFLOW_TRACKING_URI": TRACKING_URI}, latest_model_uri(serving.registered_name))
    command = serve_command(serving.host, serving.port, serving.workers)
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
        scores[rows.numpy()] = device.score(windows[k].numpy(), test.target[rows].numpy(),
                                            decode_message(message, encoding))
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
    conf = load_parameters(REPO_ROOT)["serving"]
    chosen = ServingParams.from_params({**conf, "method": args.method or conf["method"]})
    if not chosen.has_cloud_half:
        raise SystemExit(f"{chosen.method}: its cloud sends nothing per request; there is no server to simulate")
    tags = registered_tags(chosen.registered_name)
    split = tags.get("split", "leave_one_out")
    if (split == "replay") != args.replay:
        raise SystemExit(f"the latest registered {chosen.registered_name} was trained on the {split} split; "
                         + ("publish a replay-split model: kedro run --pipelines=serving --params=features.split=replay"
                            if args.replay else "publish one with `kedro run --pipelines=serving`"))
    data = load_catalog(tags["dataset"], tags["backbone"], chosen.method, split)
    serving = data["serving"]
    url = f"http://{serving.host}:{serving.port}"
    server = start_server(serving, url)
    try:
        if args.replay:
            replayed = replay_check(url, data, args.policy, args.budget, args.encoding)
        else:
            check, histories = auc_check(url, data, args.devices, args.encoding)
            levels = {c: load_level(url, histories, c, args.requests, args.time_limit, args.encoding)
                      for c in (int(c) for c in args.concurrency.split(","))}
    finally:
        if server is not None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
    if args.replay:
        report_replay(args, tags, replayed)
    else:
        report(args, tags, serving, check, levels)


def replay_check(url: str, data: dict, policy: str, budget: float, encoding: str) -> dict[str, float]:
    """Every device replays its stream over HTTP + ONNX with ``policy`` deciding on the device,
    against the in-process replay of the same model, policy and threshold."""
    params = ReplayParams.from_params({**data["replay"], "policies": [policy], "budgets": [budget]})
    model = load_model(data["model"])
    streams = streams_from_samples(data["test"])
    in_process = replay_method(model, data["serving"].method, streams, None, params, load_policy(data["policy"]))
    row = in_process.rows.iloc[0]
    draws = random_urge(streams.devices, streams.length, params.seed)[:, :, 0]
    table = model.items.weight.detach().numpy()
    raw_of = dict(zip(data["item_index"]["item_index"], data["item_index"]["raw_item_id"]))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "device_model.onnx"
        path.write_bytes(data["onnx"])
        device_model = OnnxDevice(path)
    windows, candidates = streams.windows.numpy(), streams.candidates.numpy()
    scores = np.zeros(candidates.shape, dtype=np.float32)
    latencies, decisions, received, requests, errors = [], [], 0, 0, 0
    for d in range(streams.devices):
        device = DevicePolicy(policy, float(row["threshold"]), table, streams.length, data["policy_onnx"], draws[d])
        held, seen, message = 0, [], None
        for k in range(streams.length):
            if k:
                started = time.perf_counter()
                ask = device.requests(k, held, windows[d, k], windows[d, held], seen)
                decisions.append((time.perf_counter() - started) * 1000)
            if k == 0 or ask:
                history = [int(raw_of[i]) for i in windows[d, k] if i > 0]
                status, answer, ms = post(f"{url}/invocations", [history], encoding)
                if status != 200:
                    errors += 1
                    continue  # the device keeps the head it holds
                latencies.append(ms)
                message = answer["predictions"][0]["message"]
                received += payload_bytes(message)
                requests += k > 0
                held, seen = k, []
            scores[d, k] = device_model.score(windows[d, k], candidates[d, k], decode_message(message, encoding))
            seen.append(seen_auc(scores[d, k]))
    labels = np.zeros(scores.shape, dtype=np.int8)
    labels[..., 0] = 1
    served = float(roc_auc_score(labels.ravel(), scores.ravel()))
    steps_after_first = streams.devices * (streams.length - 1)
    return {"auc_served": served, "auc_in_process": float(row["auc"]), "devices": float(streams.devices),
            "steps": float(streams.devices * streams.length), "request_rate_served": requests / steps_after_first,
            "request_rate_in_process": float(row["request_rate"]), "requests": float(requests + streams.devices),
            "bytes_per_device": received / streams.devices, "errors": float(errors),
            "request_ms_p50": float(np.percentile(latencies, 50)), "request_ms_p99": float(np.percentile(latencies, 99)),
            "decision_ms_p50": float(np.percentile(decisions, 50)) if decisions else float("nan"),
            "threshold": float(row["threshold"])}


RECORD = REPO_ROOT / "docs" / "results" / "device_simulator.csv"
COLUMNS = ["method", "encoding", "dataset", "backbone", "devices", "auc_served", "auc_in_process", "payload_bytes",
           "p50_ms_c1", "p99_ms_c1", "requests_per_second_c1", "requests_per_second_c4", "requests_per_second_c16",
           "errors", "onnx_ms_p50", "onnx_bytes", "workers", "requests", "date", "code", "machine"]


def report(args: argparse.Namespace, tags: dict[str, str], serving: ServingParams, check: dict[str, float],
           levels: dict[int, dict]) -> None:
    """This run's row replaces the row of its method and encoding in the record
    (docs/results/device_simulator.csv, the previous one kept beside it as ``previous_*``);
    the table of every row is rewritten in docs/benchmarks.md."""
    import pandas as pd

    errors = check["auc_errors"] + sum(level["errors"] for level in levels.values())
    row = {"method": tags.get("method"), "encoding": args.encoding, "dataset": tags.get("dataset"),
           "backbone": tags.get("backbone"), "devices": int(check["devices"]), "auc_served": check["auc_served"],
           "auc_in_process": check["auc_in_process"], "payload_bytes": int(check["payload_bytes"]),
           "p50_ms_c1": levels.get(1, {}).get("p50_ms"), "p99_ms_c1": levels.get(1, {}).get("p99_ms"),
           **{f"requests_per_second_c{c}": levels.get(c, {}).get("requests_per_second") for c in (1, 4, 16)},
           "errors": int(errors), "onnx_ms_p50": check["onnx_ms_p50"], "onnx_bytes": int(check["onnx_bytes"]),
           "workers": serving.workers, "requests": args.requests, "date": today(), "code": code_version(),
           "machine": machine()}
    record = pd.read_csv(RECORD) if RECORD.exists() else pd.DataFrame(columns=COLUMNS)
    same = (record["method"] == row["method"]) & (record["encoding"] == row["encoding"])
    previous = record[same].iloc[0] if same.any() else None
    if previous is not None:
        row.update({f"previous_{k}": previous[k] for k in ("p50_ms_c1", "requests_per_second_c16", "date")})
    record = pd.concat([record[~same], pd.DataFrame([row])], ignore_index=True).sort_values(["method", "encoding"])
    RECORD.parent.mkdir(parents=True, exist_ok=True)
    record.to_csv(RECORD, index=False)
    write_section(SECTION, simulator_table(record, args))
    mlflow.set_tracking_uri(TRACKING_URI)
    if mlflow.get_experiment_by_name("device_simulator") is None:
        mlflow.create_experiment("device_simulator", tags=RUNS_EXPERIMENT_TAGS)
    mlflow.set_experiment("device_simulator")
    with mlflow.start_run():
        mlflow.log_params({**tags, **vars(args)})
        mlflow.log_metrics({**check, "errors": errors, **{f"c{c}_{k}": v for c, level in levels.items()
                                                           for k, v in level.items()}})
    print(record.to_string(index=False))


def simulator_table(record, args: argparse.Namespace) -> str:
    """One row per served method and encoding, each with its own date and machine."""
    def figure(value, pattern: str) -> str:
        return "-" if value != value or value is None else pattern.format(value)

    lines = ["| method | encoding | data | AUC over HTTP + ONNX (in process) | payload (B) | p50 / p99 ms, c=1 "
             "(previous p50) | requests/s c=1 / 4 / 16 (previous c=16) | errors | measured |",
             "|---|---|---|---|---:|---|---|---:|---|"]
    for r in record.itertuples():
        previous_p50 = getattr(r, "previous_p50_ms_c1", float("nan"))
        previous_rps = getattr(r, "previous_requests_per_second_c16", float("nan"))
        lines.append(
            f"| {r.method} | {r.encoding} | {r.dataset} / {r.backbone}, {r.devices} devices | "
            f"{r.auc_served:.6f} ({r.auc_in_process:.6f}) | {r.payload_bytes:,} | "
            f"{figure(r.p50_ms_c1, '{:.2f}')} / {figure(r.p99_ms_c1, '{:.2f}')} ({figure(previous_p50, '{:.2f}')}) | "
            f"{figure(r.requests_per_second_c1, '{:.0f}')} / {figure(r.requests_per_second_c4, '{:.0f}')} / "
            f"{figure(r.requests_per_second_c16, '{:.0f}')} ({figure(previous_rps, '{:.0f}')}) | {r.errors} | "
            f"{r.date}, code {r.code}, {r.requests} requests per level, {r.workers} server workers, {r.machine} |")
    return "\n".join([
        "## Device simulator: every served method and payload encoding", "",
        "Command: `make simulate-devices METHOD=<method> ENCODING=<encoding>` (`python benchmarks/simulate_devices.py "
        "--method <method> --encoding <encoding>`), one row per method and encoding, each replaced by its latest run "
        "(record: docs/results/device_simulator.csv). Each device of the test set sends its current window over HTTP "
        "to the served cloud half (uvicorn + MLflow's scoring app on 127.0.0.1), decodes the message and scores its "
        "candidates with the ONNX device half; the AUC beside it is the in-process model's on the same devices. "
        "Load: requests from 1, 4 and 16 client threads.", "", *lines])


REPLAY_RECORD = REPO_ROOT / "docs" / "results" / "device_simulator_replay.csv"


def report_replay(args: argparse.Namespace, tags: dict[str, str], replayed: dict[str, float]) -> None:
    """This run's row replaces its (method, policy, budget, encoding) row of the replay record;
    the `device_simulator_replay` table of docs/benchmarks.md is rewritten from it."""
    import pandas as pd

    row = {"method": tags.get("method"), "policy": args.policy, "budget": args.budget, "encoding": args.encoding,
           "dataset": tags.get("dataset"), "backbone": tags.get("backbone"), **replayed, "date": today(),
           "code": code_version(), "machine": machine()}
    record = pd.read_csv(REPLAY_RECORD) if REPLAY_RECORD.exists() else pd.DataFrame(columns=list(row))
    same = ((record["method"] == row["method"]) & (record["policy"] == row["policy"])
            & np.isclose(record["budget"].astype(float), row["budget"]) & (record["encoding"] == row["encoding"]))
    previous = record[same].iloc[0] if same.any() else None
    if previous is not None:
        row.update({f"previous_{k}": previous[k] for k in ("request_ms_p50", "date")})
    record = pd.concat([record[~same], pd.DataFrame([row])], ignore_index=True).sort_values(
        ["method", "policy", "budget", "encoding"])
    REPLAY_RECORD.parent.mkdir(parents=True, exist_ok=True)
    record.to_csv(REPLAY_RECORD, index=False)
    lines = ["## Device simulator: the replay over HTTP", "",
             "Command: `make simulate-devices METHOD=<method> ENCODING=<encoding> SIMULATE_ARGS='--replay --policy <p> "
             "--budget <b>'`; one row per method, policy, budget and encoding, each replaced by its latest run (record: "
             "docs/results/device_simulator_replay.csv). Every device replays its stream: the policy decides on the "
             "device (numpy, the learned one in ONNX Runtime) whether to request a fresh head from the served cloud "
             "half; each step is scored with the ONNX device half and the head held. In process: the same model, "
             "policy and threshold replayed in one batch (replay/).", "",
             "| method | policy @ budget | encoding | data | AUC over HTTP + ONNX (in process) | request rate (in process) "
             "| requests | bytes / device | request p50 / p99 ms (previous p50) | decision p50 ms | errors | measured |",
             "|---|---|---|---|---|---|---:|---:|---|---:|---:|---|"]
    for r in record.to_dict("records"):
        previous = r.get("previous_request_ms_p50", float("nan"))
        lines.append(
            f"| {r['method']} | {r['policy']} @ {r['budget']:g} | {r['encoding']} | {r['dataset']} / {r['backbone']}, "
            f"{int(r['devices'])} devices x {int(r['steps'] // r['devices'])} steps | {r['auc_served']:.6f} "
            f"({r['auc_in_process']:.6f}) | {r['request_rate_served']:.4f} ({r['request_rate_in_process']:.4f}) | "
            f"{int(r['requests']):,} | {r['bytes_per_device']:,.0f} | {r['request_ms_p50']:.2f} / "
            f"{r['request_ms_p99']:.2f} ({'-' if previous != previous else f'{previous:.2f}'}) | "
            f"{r['decision_ms_p50']:.3f} | {int(r['errors'])} | {r['date']}, code {r['code']}, {r['machine']} |")
    write_section("device_simulator_replay", "\n".join(lines))
    print(record.to_string(index=False))


if __name__ == "__main__":
    main()
