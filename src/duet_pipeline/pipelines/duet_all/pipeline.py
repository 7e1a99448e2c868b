"""``duet_all``: data stages once, then the model stages once per registered backbone.

Each backbone runs in its own Kedro namespace (``din.``, ``gru4rec.``, ``sasrec.``)
with its own datasets, and reads its backbone name from ``params:<namespace>.backbone``.
"""
from kedro.pipeline import Pipeline, pipeline

from duet_pipeline.models.backbones import BACKBONES

from ..stages import DATA_STAGES, MODEL_STAGES, compose

# Datasets and parameters every backbone namespace shares instead of owning a copy.
SHARED_DATASETS = {"item_index", "train_samples", "validation_samples", "test_samples"}
SHARED_PARAMETERS = {"params:model", "params:training", "params:ppg", "params:personalization", "params:dataset"}


def per_backbone(model_stages: Pipeline, backbone: str) -> Pipeline:
    return pipeline(
        model_stages,
        namespace=backbone,
        inputs=SHARED_DATASETS & model_stages.inputs(),
        parameters=SHARED_PARAMETERS & model_stages.inputs(),
    )


def create_pipeline(**kwargs) -> Pipeline:
    model_stages = compose(MODEL_STAGES)
    return compose(DATA_STAGES) + sum(
        (per_backbone(model_stages, name) for name in BACKBONES), Pipeline([])
    )
