"""PPG training: DUET's generator and backbone, trained jointly (PROTOCOL sections 3-4)."""
from kedro.pipeline import Pipeline, node, pipeline

from .nodes import train_duet_model


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(
                train_duet_model,
                inputs=["train_samples", "validation_samples", "base_model", "params:ppg", "params:training"],
                outputs=["duet_model", "duet_training_history", "duet_training_metrics"],
                name="train_duet_model",
            )
        ]
    )
