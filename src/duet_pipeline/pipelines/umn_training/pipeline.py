"""UMN training: the base model (shared backbone + static head)."""
from kedro.pipeline import Pipeline, node, pipeline

from .nodes import train_base_model


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(
                train_base_model,
                inputs=[
                    "train_samples", "validation_samples", "item_index",
                    "params:backbone", "params:model", "params:training",
                ],
                outputs=["base_model", "base_training_history", "base_training_metrics"],
                name="train_base_model",
            )
        ]
    )
