"""``dccl``: the data stages, the base model, then the DCCL loop one node per stage.

Round r (0..R, R = ``personalization.dccl.rounds``): ``dccl_devices_round_r`` (every
device trains its meta-patch) and, for r < R, ``dccl_distill_round_{r+1}`` (MoMoDistill)
and ``dccl_theta_round_{r+1}`` (Theta's own step). Every round's models are versioned
datasets (``dccl_round_<r>_cloud_model``, ``dccl_round_<r>_device_model``); each round is
evaluated, and ``report_dccl_rounds`` writes the per-round table and logs every metric to
MLflow as a history over the rounds.
"""
from kedro.pipeline import Pipeline, node

from ..building import SAMPLES, SHARED_MODEL_PARAMETERS, backbone_inputs
from ..selection import current
from ..stages import data_stages
from ..transcoding import for_this_run
from ..umn_training.pipeline import train_base_node
from .nodes import (
    distill_cloud,
    evaluate_round,
    report_rounds,
    start_dccl,
    train_device_metapatches,
    update_theta,
)

OPTIONS = "params:personalization.dccl"


def cloud(r: int) -> str:
    return f"dccl_round_{r}_cloud_model"


def devices(r: int) -> str:
    return f"dccl_round_{r}_device_model"


def round_nodes(r: int, last: int) -> list:
    """Round r's device stage and evaluation, then (r < last) the cloud's two stages."""
    previous = {"previous": devices(r - 1)} if r > 0 else {}
    nodes = [
        node(train_device_metapatches,
             inputs={"cloud_model": cloud(r), "train_samples": "train_samples", "options": OPTIONS, **previous},
             outputs=devices(r), name=f"dccl_devices_round_{r}"),
        node(evaluate_round, inputs={"cloud_model": cloud(r), "device_model": devices(r),
                                     "validation_samples": "validation_samples", "test_samples": "test_samples"},
             outputs=f"dccl_round_{r}_report", name=f"dccl_evaluate_round_{r}"),
    ]
    if r < last:
        inputs, _ = backbone_inputs(None)
        nodes += [
            node(distill_cloud,
                 inputs={"cloud_model": cloud(r), "device_model": devices(r), **SAMPLES, **inputs,
                         **SHARED_MODEL_PARAMETERS, "options": OPTIONS},
                 outputs=[f"dccl_round_{r + 1}_distilled_model", f"dccl_round_{r + 1}_training_history",
                          f"dccl_round_{r + 1}_training_metrics"],
                 name=f"dccl_distill_round_{r + 1}"),
            node(update_theta,
                 inputs={"distilled_model": f"dccl_round_{r + 1}_distilled_model", "device_model": devices(r),
                         "train_samples": "train_samples", "training": "params:training", "options": OPTIONS},
                 outputs=cloud(r + 1), name=f"dccl_theta_round_{r + 1}"),
        ]
    return nodes


def create_pipeline(**kwargs) -> Pipeline:
    rounds = current().options["metapatch"].rounds
    nodes = [train_base_node(None, current().streaming),
             node(start_dccl, inputs={"base_model": "base_model", "options": OPTIONS}, outputs=cloud(0),
                  name="dccl_start")]
    for r in range(rounds + 1):
        nodes += round_nodes(r, rounds)
    nodes.append(node(report_rounds, inputs={f"round_{r}": f"dccl_round_{r}_report" for r in range(rounds + 1)},
                      outputs=["dccl_rounds_table", "dccl_rounds_mlflow_metrics"], name="report_dccl_rounds"))
    return data_stages() + for_this_run(Pipeline(nodes))
