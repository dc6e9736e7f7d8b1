"""Typed, frozen trial configs built from plain dicts, with loud errors, and their one plain encoding.

A study declares its config as a frozen dataclass; the driver builds it once from the preset and the
`--set key=value` overrides (parsed by the field's type with `parse_value`), and a trial builds its own once
from the plain values Ray Tune carries (`from_dict`). Unknown keys and mistyped values raise `ConfigError`,
whose message is one line naming the fix.

What Tune carries and what MLflow records are the same plain values, `encode_value` of each field: tuples of
integers as '64-32', other tuples as 'adam,sgd', everything else as it is; `from_dict` reads them back.

    >>> encode_value((256, 128, 64)), encode_value(("adam", "sgd")), encode_value(0.1)
    ('256-128-64', 'adam,sgd', 0.1)
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from typing import Any, TypeVar

T = TypeVar("T")


class InputError(Exception):
    """Bad input whose message is one line naming the fix: a study's command line prints it and exits with code 2
    (a bad config value, a data set or weights file that is missing, records a step needs that are not there)."""


class ConfigError(InputError, ValueError):
    """A bad configuration value; the message is one line meant for the user."""


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def parse_widths(text: str) -> tuple[int, ...]:
    """'64-32-16' (or '64,32' or '[64, 32]') -> (64, 32, 16)."""
    cleaned = text.strip().strip("[]()").replace(",", "-").replace(" ", "")
    if not cleaned:
        return ()
    return tuple(int(part) for part in cleaned.split("-"))


def _coerce(key: str, value: Any, annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _coerce(key, value, option)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0])
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{key}={value!r} is not one of {', '.join(map(repr, args))}")
        return value
    if origin is tuple:
        if isinstance(value, str):
            try:
                value = parse_widths(value) if args[0] is int else tuple(v.strip() for v in value.split(",") if v.strip())
            except ValueError:
                raise ConfigError(f"{key}={value!r} is not a list of integers; use e.g. {key}=64-32") from None
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}={value!r} should be a list; use e.g. {key}=64-32")
        item_type = args[0]
        return tuple(_coerce(key, v, item_type) for v in value)
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise ConfigError(f"{key}={value!r} should be true or false")
    if annotation is int:
        if isinstance(value, bool):
            raise ConfigError(f"{key}={value!r} should be an integer")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise ConfigError(f"{key}={value!r} should be an integer")
    if annotation is float:
        if isinstance(value, bool):
            raise ConfigError(f"{key}={value!r} should be a number")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{key}={value!r} should be a number")
    if annotation is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key}={value!r} should be a string")
    return value


def parse_value(cls: type, key: str, text: str) -> Any:
    """Parse a `--set key=text` value by the type of `cls.key`."""
    types_ = _field_types(cls)
    if key not in types_:
        raise ConfigError(f"unknown config key {key!r}; known keys: {', '.join(sorted(types_))}")
    annotation = types_[key]
    # JSON lists are accepted for tuple fields: --set widths=[64,32]
    if typing.get_origin(annotation) is tuple and text.strip().startswith("["):
        try:
            return _coerce(key, json.loads(text), annotation)
        except json.JSONDecodeError:
            pass
    return _coerce(key, text, annotation)


def coerce_value(cls: type, key: str, value: Any) -> Any:
    """One value of `cls.key` as its field's type (e.g. a preset's '64-32' for a tuple of integers)."""
    types_ = _field_types(cls)
    if key not in types_:
        raise ConfigError(f"unknown config key {key!r}; known keys: {', '.join(sorted(types_))}")
    return _coerce(key, value, types_[key])


def from_dict(cls: type[T], values: dict[str, Any]) -> T:
    """Build the frozen dataclass `cls`, rejecting unknown keys and mistyped values."""
    types_ = _field_types(cls)
    unknown = sorted(set(values) - set(types_))
    if unknown:
        raise ConfigError(f"unknown config key(s) {', '.join(map(repr, unknown))}; known keys: {', '.join(sorted(types_))}")
    kwargs = {k: _coerce(k, v, types_[k]) for k, v in values.items()}
    return cls(**kwargs)


def to_dict(config: Any) -> dict[str, Any]:
    """Flat dict of a config dataclass, with tuples kept as tuples."""
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}


def encode_value(value: Any) -> Any:
    """A config value as Tune carries it and MLflow records it: tuples as strings ('64-32' for integers,
    'adam,sgd' for others), anything else unchanged; `from_dict` parses it back by the field's type."""
    if not isinstance(value, (tuple, list)):
        return value
    return ("-" if value and all(isinstance(v, int) and not isinstance(v, bool) for v in value) else ",").join(
        map(str, value))


def encode(config: Any) -> dict[str, Any]:
    """Every field of a config dataclass, encoded (`encode_value`)."""
    return {key: encode_value(value) for key, value in to_dict(config).items()}
