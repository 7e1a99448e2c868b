"""The ``serving`` parameters (conf/base/parameters_serving.yml)."""
from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from duet_pipeline.methods import get_method
from duet_pipeline.methods import duet as duet_module
from duet_pipeline.parameters import Block, parse_block

# Methods whose model generates a head per request: the ones a head generator can serve.
GENERATING_METHODS = list(duet_module.SPEC.variants)


class ServingParams(Block):
    method: str  # the DUET variant whose trained model is served
    registered_model: str = Field(min_length=1)
    host: str = Field(min_length=1)
    port: int = Field(ge=1, le=65535)
    workers: int = Field(ge=1)  # server processes (one thread each)
    check_devices: int = Field(ge=0)  # 0: every test device

    @field_validator("method")
    @classmethod
    def _generates_heads(cls, name: str) -> str:
        if name not in GENERATING_METHODS:
            raise ValueError(f"must be a method whose model generates heads, one of {GENERATING_METHODS}")
        return name

    @property
    def model_key(self) -> str:
        return get_method(self.method).key

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> "ServingParams":
        return parse_block(cls, params, "serving")
