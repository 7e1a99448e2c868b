"""The ``serving`` parameters (conf/base/parameters_serving.yml)."""
from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from duet_pipeline.methods import get_method, method_names
from duet_pipeline.parameters import Block, parse_block


class ServingParams(Block):
    method: str  # the method whose trained model is served: its cloud half (if any) and device half
    # MLflow model registry name of the cloud half, one version per run; "{method}": the method's key
    registered_model: str = Field(min_length=1)
    host: str = Field(min_length=1)
    port: int = Field(ge=1, le=65535)
    workers: int = Field(ge=1)  # server processes (one thread each)
    check_devices: int = Field(ge=0)  # 0: every test device

    @field_validator("method")
    @classmethod
    def _registered(cls, name: str) -> str:
        # Every registered method has a device model to export.
        if name not in method_names():
            raise ValueError(f"must be a registered method, one of {method_names()}")
        return name

    @property
    def model_key(self) -> str:
        """The trained model the method's device uses: its own, or the shared base model."""
        return get_method(self.method).model_name

    @property
    def has_cloud_half(self) -> bool:
        """Whether the cloud sends the device something per request (else: a device model only)."""
        return get_method(self.method).on_device == "receives"

    @property
    def method_key(self) -> str:
        """The method's key (``duet+swa`` -> ``duet_swa``), which names its serving outputs."""
        return get_method(self.method).key

    @property
    def registered_name(self) -> str:
        return self.registered_model.replace("{method}", self.method_key)

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> "ServingParams":
        return parse_block(cls, params, "serving")
