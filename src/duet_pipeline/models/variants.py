"""Building DUET models from parameters: variant names and warm starts."""
from __future__ import annotations

from typing import Any

from .recommender import ModelConfig, Recommender

# Keys of the `ppg` parameters that are ParameterGenerator keyword arguments.
GENERATOR_KEYS = ("generator_hidden", "num_generators", "temperature", "deviation_init_scale")


def base_model_config(num_items: int, max_seq_len: int, backbone: str, model: dict[str, Any]) -> ModelConfig:
    """The base model's config from the `model` parameters and the data's sizes."""
    options = model.get("backbone_options", {}).get(backbone, {})
    return ModelConfig(
        num_items=num_items,
        max_seq_len=max_seq_len,
        backbone=backbone,
        dim=int(model["dim"]),
        backbone_options=dict(options),
    )


def duet_variant_name(ppg: dict[str, Any]) -> str:
    """'duet', 'duet+swa', 'duet-pa-linear', 'duet+swa-pa-gaussian', ... from the parameters."""
    name = "duet+swa" if int(ppg.get("num_generators", 1)) > 1 else "duet"
    position = ppg.get("position_weights", "none")
    return name if position == "none" else f"{name}-pa-{position}"


def duet_config(base: ModelConfig, ppg: dict[str, Any]) -> ModelConfig:
    """The DUET model's config: the base model's backbone with a generated head.

    Every generator setting must be given, so the variant's name and the model built
    can never disagree.
    """
    missing = [f"ppg.{key}" for key in GENERATOR_KEYS if key not in ppg]
    if missing:
        raise ValueError(f"missing parameters {missing} (see conf/base/parameters_ppg_training.yml)")
    return ModelConfig(
        num_items=base.num_items,
        max_seq_len=base.max_seq_len,
        backbone=base.backbone,
        dim=base.dim,
        backbone_options=dict(base.backbone_options),
        generator={key: ppg[key] for key in GENERATOR_KEYS},
        position_weights=ppg.get("position_weights", "none"),
        position_weights_on_backbone=bool(ppg.get("position_weights_on_backbone", False)),
    )


def warm_start_from_base(duet: Recommender, base_state: dict[str, Any]) -> list[str]:
    """Copy the base model's item table, backbone, target tower and head into ``duet``.

    The base head becomes the static head around which the PPG generates deviations.
    Returns the names of the DUET parameters that were initialised from the base model.
    """
    renamed = {
        (f"head.static_head.{key[len('head.'):]}" if key.startswith("head.") else key): value
        for key, value in base_state.items()
    }
    own = duet.state_dict()
    copied = {k: v for k, v in renamed.items() if k in own and own[k].shape == v.shape}
    duet.load_state_dict(copied, strict=False)
    return sorted(copied)
