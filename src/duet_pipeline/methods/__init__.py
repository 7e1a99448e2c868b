"""Personalisation methods: how a device gets the model it scores its candidates with.

Every method is one module with ``personalize(model, devices, options)`` returning a
:class:`~duet_pipeline.methods.common.Personalization` (scores of the devices'
candidates, in row order, plus a timing report). Adding a method = adding a module
and a line in :data:`METHODS`.
"""
from __future__ import annotations

from types import ModuleType

from . import base, duet, finetune
from .common import Devices, Personalization

METHODS: dict[str, ModuleType] = {"base": base, "finetune": finetune, "duet": duet}


def get_method(name: str) -> ModuleType:
    if name not in METHODS:
        raise ValueError(f"unknown method '{name}'; valid choices: {sorted(METHODS)}")
    return METHODS[name]


__all__ = ["METHODS", "Devices", "Personalization", "get_method"]
