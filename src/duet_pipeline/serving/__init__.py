"""The two real halves of the device-cloud loop.

- :mod:`.requests`: what the cloud accepts as a device's history, and the policy for
  everything else (a bad request is refused with a message, never a crash).
- :mod:`.generator`: the head generator as an MLflow pyfunc model (raw item ids in, head
  weights out), served with ``mlflow models serve``.
- :mod:`.device`: the device's static model (backbone, target tower, head application)
  exported to ONNX, taking the received head as inputs, run with onnxruntime.
"""
