"""``serving``: the trained DUET model (``serving.method``, default duet+swa) as the two
halves of a real deployment. Reads the latest ``<method>_model`` a ``duet`` run wrote.

- ``publish_head_generator``: the generator as an MLflow pyfunc model, registered as a new
  version of ``serving.registered_model`` (``make serve`` serves the latest);
- ``export_device_onnx`` -> ``device_model_onnx``: backbone, target tower and head
  application, the received head as inputs; ``check_device_onnx`` compares it with
  PyTorch on the test devices.
"""
from kedro.pipeline import Pipeline, node

from ..selection import current
from .nodes import check_device_onnx, export_device_onnx, publish_head_generator


def create_pipeline(**kwargs) -> Pipeline:
    model = f"{current().serving.model_key}_model"
    return Pipeline([
        node(publish_head_generator,
             inputs={"model_bundle": model, "item_index": "item_index", "dataset": "params:dataset",
                     "backbone": "params:backbone", "serving": "params:serving"},
             outputs="head_generator_report", name="publish_head_generator"),
        node(export_device_onnx, inputs={"model_bundle": model}, outputs="device_model_onnx",
             name="export_device_onnx"),
        node(check_device_onnx, inputs={"device_model_onnx": "device_model_onnx", "model_bundle": model,
                                        "test_samples": "test_samples", "serving": "params:serving"},
             outputs="device_model_report", name="check_device_onnx"),
    ])
