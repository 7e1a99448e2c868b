"""Strict parsing of parameter blocks: a wrong key, type or range fails with one line.

Every block of ``conf/base/parameters_*.yml`` has a pydantic model next to the code that
reads it (``TrainingConfig`` in training/loop.py, a backbone's ``Options``, a method's
``Options``, ...). :func:`parse_block` turns a pydantic error into a
:class:`ParameterError` naming the parameter, the value and what is allowed.
"""
from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError


class ParameterError(ValueError):
    """A parameter is unknown, missing, of the wrong type or out of range."""


class Block(BaseModel):
    """A parameter block: unknown keys are errors, values are checked on entry."""

    model_config = ConfigDict(extra="forbid", frozen=True)


B = TypeVar("B", bound=BaseModel)


def parse_block(model: type[B], value: Any, path: str) -> B:
    """``value`` (a dict from YAML / --params) parsed as ``model``; ``path`` names it."""
    if isinstance(value, model):
        return value
    if not isinstance(value, dict):
        raise ParameterError(f"parameter {path} = {value!r}: must be a mapping of {sorted(model.model_fields)}")
    try:
        return model.model_validate(value)
    except ValidationError as error:
        raise ParameterError("\n".join(_describe(model, error, path))) from None


def _describe(model: type[BaseModel], error: ValidationError, path: str) -> list[str]:
    lines = []
    for problem in error.errors():
        name = ".".join([path, *(str(part) for part in problem["loc"])])
        if problem["type"] == "extra_forbidden":
            lines.append(f"unknown parameter {name} (value {problem['input']!r}); "
                         f"valid keys here: {_keys_at(model, problem['loc'][:-1])}")
        elif problem["type"] == "missing":
            lines.append(f"missing parameter {name} (see conf/base/parameters_*.yml)")
        else:
            lines.append(f"parameter {name} = {problem['input']!r}: {problem['msg']}")
    return lines


def _keys_at(model: type[BaseModel], loc: tuple) -> list[str]:
    """The field names of the (nested) block at ``loc``, where it is a pydantic model."""
    for part in loc:
        field = model.model_fields.get(str(part))
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return sorted(model.model_fields)


def one_of(name: str, value: Any, allowed: list[str]) -> None:
    """Fail unless ``value`` is one of ``allowed`` (a registry's names)."""
    if value not in allowed:
        raise ParameterError(f"parameter {name} = {value!r}: must be one of {allowed}")
