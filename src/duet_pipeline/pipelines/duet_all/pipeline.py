"""``duet_all``: data stages once, then the model stages once per registered backbone.

Each backbone runs in its own Kedro namespace (``din.``, ``gru4rec.``, ``sasrec.``) with
its own datasets; the backbone's name is fixed in its nodes, so no parameter stub is needed.
"""
from kedro.pipeline import Pipeline, pipeline

from duet_pipeline.models.backbones import BACKBONES

from ..selection import current
from ..stages import data_stages, model_stages

# Datasets every backbone namespace shares instead of owning a copy.
SHARED_DATASETS = {"item_index", "train_samples", "validation_samples", "test_samples"}


def per_backbone(backbone: str) -> Pipeline:
    stages = model_stages(current(), backbone)
    parameters = {name for name in stages.inputs() if name.startswith("params:")}
    shared = {name for name in stages.inputs() if name.split("@")[0] in SHARED_DATASETS}  # any transcoding
    return pipeline(stages, namespace=backbone, inputs=shared, parameters=parameters)


def create_pipeline(**kwargs) -> Pipeline:
    return data_stages() + sum((per_backbone(name) for name in BACKBONES), Pipeline([]))
