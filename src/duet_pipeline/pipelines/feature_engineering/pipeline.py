"""Feature engineering: PROTOCOL section 2 as one node with three versioned outputs."""
from kedro.pipeline import Pipeline, node, pipeline

from .nodes import build_samples


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(
                build_samples,
                inputs=["interactions", "item_index", "params:features"],
                outputs=["train_samples", "validation_samples", "test_samples"],
                name="build_samples",
            )
        ]
    )
