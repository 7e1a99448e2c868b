"""Feature engineering: PROTOCOL section 2 as one node with three versioned outputs.

``features.engine`` picks the node; ``features.split: replay`` adds the request policy's
train-period streams (``policy_samples``). The spark node reads and writes the same files as
the pandas one through their ``@spark`` transcodings (kedro-datasets' SparkDataset, in
conf/base/datasets_spark.yml), so every later stage loads the samples as pandas whichever engine made them.
"""
from kedro.pipeline import Pipeline, node, pipeline

from duet_pipeline.pipelines import selection

from .nodes import build_replay_samples, build_samples, build_samples_spark

SAMPLES = ["train_samples", "validation_samples", "test_samples"]


def create_pipeline(**kwargs) -> Pipeline:
    chosen = selection.current()
    if chosen.split == "replay":  # pandas only (FeatureParams)
        return pipeline([node(build_replay_samples, inputs=["interactions", "item_index", "params:features"],
                              outputs=[*SAMPLES, "policy_samples"], name="build_samples")])
    if chosen.engine == "spark":
        return pipeline([node(build_samples_spark, inputs=["interactions@spark", "item_index@spark", "params:features"],
                              outputs=[f"{name}@spark" for name in SAMPLES], name="build_samples")])
    return pipeline([node(build_samples, inputs=["interactions", "item_index", "params:features"], outputs=SAMPLES,
                          name="build_samples")])

