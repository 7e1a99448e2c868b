"""Fine-tuning cost per device on ml-100k: the plain loop vs batched, same devices (issue 10).

    python docs/diagnostics/ab_finetune.py <backbone> <every-kth-user>   # e.g. din 8

Loop (its first call warms up), batched at 1, 8 and 16 devices per chunk, then the loop
again (warm). Run from the repository root; reads ../shared/data or DUET_DATA_DIR.
"""
import sys, time, torch
sys.path.insert(0, "benchmarks")
from bench_speed import ml100k_setup, build_model
from duet_pipeline.methods.common import Devices
from duet_pipeline.methods.finetune import FinetuneConfig, finetune_scores_batched, finetune_scores_loop
train, test, n, params, config, order = ml100k_setup()
model = build_model(sys.argv[1], "base", train, n, params, config).eval()
users = torch.unique(test.user)[::int(sys.argv[2])]
dev = Devices(test.for_users(users), train)
for chunk in [1, 8, 16, 1]:
    fc = FinetuneConfig.model_validate({**params["personalization"]["finetune"], "progress": False, "users_per_chunk": chunk})
    if chunk == 1:
        t=time.perf_counter(); finetune_scores_loop(model, dev, fc); print("loop", (time.perf_counter()-t)/len(users)*1000)
    t=time.perf_counter(); finetune_scores_batched(model, dev, fc); print(chunk, (time.perf_counter()-t)/len(users)*1000, "ms/device")
