"""The two real halves of the device-cloud loop, for any method's head.

- :mod:`.requests`: what the cloud accepts as a device's history, and the policy for
  everything else (a bad request is refused with a message, never a crash).
- :mod:`.cloud_half`: a method's cloud half as an MLflow pyfunc model (raw item ids in,
  the head's message out), served by :mod:`.serve` behind :mod:`.app`'s request limits.
- :mod:`.encodings`: how a message travels (float32, float16, int8 with scales).
- :mod:`.device`: the device's static model and its head's device half exported to ONNX,
  the message as named inputs, run with onnxruntime.
"""
