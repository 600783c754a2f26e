"""Typed, frozen configs built from a params.yaml section.

The library never reads params.yaml itself: a stage hands it a dict, and
``from_params`` turns it into a frozen dataclass, rejecting unknown keys by
name (docs/architecture.md rule 2) and checking declared ranges.
"""
from __future__ import annotations

import dataclasses
import typing
from typing import Any, Mapping, TypeVar

C = TypeVar("C")


class ConfigError(ValueError):
    """Bad params: the message names the key, the problem and the fix."""


def from_params(cls: type[C], params: Mapping[str, Any] | None, section: str = "") -> C:
    """Build dataclass ``cls`` from ``params``; unknown keys are an error."""
    params = dict(params or {})
    where = f"params section {section!r}" if section else cls.__name__
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(params) - set(fields))
    if unknown:
        raise ConfigError(
            f"unknown key(s) {unknown} in {where}; valid keys: {sorted(fields)}"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {name: _coerce(value, hints[name], f"{section}.{name}" if section else name)
              for name, value in params.items()}
    try:
        config = cls(**kwargs)
    except TypeError as exc:  # a required field is missing
        raise ConfigError(f"{where}: {exc}") from None
    validate = getattr(config, "validate", None)
    if validate is not None:
        validate()
    return config


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """YAML gives lists for tuples and ints for floats; accept those, reject the rest."""
    origin = typing.get_origin(hint)
    if origin is tuple and isinstance(value, (list, tuple)):
        return tuple(value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str, bool) and not isinstance(value, hint):
        raise ConfigError(f"{where} must be {hint.__name__}, got {value!r}")
    return value


def check_fraction(value: float, name: str, *, open_low: bool = False) -> None:
    low_ok = value > 0 if open_low else value >= 0
    if not (low_ok and value <= 1):
        interval = "(0, 1]" if open_low else "[0, 1]"
        raise ConfigError(f"{name} must lie in {interval}, got {value}")


def check_positive(value: float, name: str) -> None:
    if not value > 0:
        raise ConfigError(f"{name} must be > 0, got {value}")


def check_choice(value: str, choices: typing.Iterable[str], name: str) -> None:
    choices = list(choices)
    if value not in choices:
        raise ConfigError(f"{name} must be one of {choices}, got {value!r}")
