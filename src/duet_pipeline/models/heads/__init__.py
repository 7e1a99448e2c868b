"""The heads a model can have, one file each; importing the package registers every one.

``base``: a head's interface (a cloud half, ``message``, and a device half, ``forward``)
and the personalised heads' shared parts; the other modules: one head each.
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from .base import PERSONAL_HEADS, PersonalHead

# Every module of the package, so that a new head file registers itself without a list to edit.
for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")


def build_personal_head(options: dict[str, Any], dim: int, max_seq_len: int, num_items: int) -> PersonalHead:
    """The head named ``options["name"]`` with the rest of ``options`` as its keyword arguments."""
    name = options["name"]
    if name not in PERSONAL_HEADS:
        raise ValueError(f"unknown personalised head '{name}'; registered: {sorted(PERSONAL_HEADS)}")
    kwargs = {k: v for k, v in options.items() if k != "name"}
    return PERSONAL_HEADS[name](dim, max_seq_len, num_items, **kwargs)
