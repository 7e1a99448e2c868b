"""``serving``: a trained method (``serving.method``, default duet+swa) as the two halves of
a real deployment. Reads the latest model a ``duet`` run wrote for it (its own, or the base
model for base and finetune); with ``features.split=replay``, the one a ``replay`` run wrote
(the registered version is tagged with its split, for ``simulate-devices --replay``).

- ``publish_cloud_half`` (methods whose cloud sends something per request): the cloud half
  as an MLflow pyfunc model, registered as a new version of ``serving.registered_model``
  (``make serve`` serves the latest);
- ``export_device_onnx`` -> ``<key>_device_onnx``: backbone, target tower and the head's
  device half, the message as named inputs; ``check_device_onnx`` compares it with PyTorch
  on the test devices.
"""
from kedro.pipeline import Pipeline, node

from ..selection import current
from .nodes import check_device_onnx, export_device_onnx, publish_cloud_half


def create_pipeline(**kwargs) -> Pipeline:
    serving = current().serving
    model, key = f"{serving.model_key}_model", serving.method_key
    nodes = [
        node(export_device_onnx, inputs={"model_bundle": model, "serving": "params:serving"}, outputs=f"{key}_device_onnx",
             name="export_device_onnx"),
        node(check_device_onnx, inputs={"device_model_onnx": f"{key}_device_onnx", "model_bundle": model,
                                        "test_samples": "test_samples", "serving": "params:serving"},
             outputs=f"{key}_device_report", name="check_device_onnx"),
    ]
    if serving.has_cloud_half:
        nodes.insert(0, node(publish_cloud_half,
                             inputs={"model_bundle": model, "item_index": "item_index", "dataset": "params:dataset",
                                     "backbone": "params:backbone", "split": "params:features.split",
                                     "serving": "params:serving"},
                             outputs=f"{key}_cloud_half_report", name="publish_cloud_half"))
    return Pipeline(nodes)
