"""Personalisation: simulated devices get their model by fine-tuning or by DUET generation."""
from kedro.pipeline import Pipeline, node, pipeline

from .nodes import finetune_devices, generate_device_heads


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(finetune_devices,
                 inputs=["base_model", "train_samples", "test_samples", "params:personalization"],
                 outputs=["finetune_predictions", "finetune_report"], name="finetune_devices"),
            node(generate_device_heads, inputs=["duet_model", "test_samples", "params:personalization"],
                 outputs=["duet_predictions", "duet_report"], name="generate_device_heads"),
        ]
    )
