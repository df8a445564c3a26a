"""The rules of a config field, declared beside the field: a number's `Range` in the field's metadata
(`ranged`), a text field's allowed values in its `Literal` type. `check_fields` holds a config section
(a dataclass) to them, one `ConfigError` naming the key.

The training config (`arc_trm.config`) and the model config (`arc_trm.model.trm`, which the training
config holds) both declare their fields with this module, so it imports neither.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from arc_trm.errors import ConfigError


@dataclass(frozen=True)
class Range:
    """Allowed values of a numeric field: finite, within [low, high] (an open end where `*_open`)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def allows(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)

    def describe(self, integer: bool) -> str:
        def number(value: float) -> str:  # 4294967295, not 4.29497e+09
            return str(int(value)) if integer and float(value).is_integer() else f"{value:g}"

        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.low_open else '>='} {number(self.low)}")
        if self.high is not None:
            parts.append(f"{'<' if self.high_open else '<='} {number(self.high)}")
        kind = "an integer" if integer else "a finite number"
        return f"{kind} {' and '.join(parts)}" if parts else kind


AT_LEAST_1, AT_LEAST_0, POSITIVE, FRACTION = Range(1), Range(0), Range(0, low_open=True), Range(0, 1)
UNIT_OPEN = Range(0, 1, high_open=True)

INT64_MAX = 2**63 - 1
"""The largest integer torch, numpy and the JSON writer (orjson) take: a larger one (model.T=1e21) used to
run, then fail with a traceback when the model was exported."""

_RANGE = "range"


def ranged(default: Any, allowed: Range) -> Any:
    """A dataclass field with `default` whose value must lie in `allowed` (`check_fields`, shown by `--help`)."""
    return field(default=default, metadata={_RANGE: allowed})


def range_of(config_field: dataclasses.Field) -> Range | None:
    """The range a field was declared with (`ranged`), if any."""
    return config_field.metadata.get(_RANGE)


def _annotations(section: Any) -> dict[str, Any]:
    # annotations are strings (postponed evaluation) in every config module: resolve them, Literal included
    return typing.get_type_hints(section if isinstance(section, type) else type(section))


def _choices(annotation: Any) -> tuple[Any, ...]:
    """The values a `Literal` type allows; () for any other type."""
    return typing.get_args(annotation) if typing.get_origin(annotation) is Literal else ()


def field_types(section: Any) -> dict[str, type]:
    """The type of each field of a dataclass (class or instance): int, float, str or bool (a Literal's values' type)."""
    annotations = _annotations(section)
    types = {}
    for config_field in dataclasses.fields(section):
        annotation = annotations[config_field.name]
        choices = _choices(annotation)
        types[config_field.name] = type(choices[0]) if choices else annotation
    return types


def is_of_type(value: Any, kind: type) -> bool:
    """JSON's reading of a field type: a bool is no int, an int is a float."""
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, kind) and (kind is bool or not isinstance(value, bool))


def spoken_choices(choices: tuple[Any, ...]) -> str:
    """'a or b', 'a, b or c'; a longer list reads better as 'one of a, b, c, d'."""
    names = [str(choice) for choice in choices]
    if len(names) > 3:
        return f"one of {', '.join(names)}"
    return f"{', '.join(names[:-1])} or {names[-1]}" if len(names) > 1 else names[0]


def check_fields(section: Any, prefix: str) -> None:
    """Every field of the dataclass instance `section` within its rule, in field order: a number within its
    `Range` and, an integer, within 64 bits; a Literal-typed field one of its values. A `ConfigError`
    naming the key (`prefix` + field name) and the allowed values otherwise."""
    annotations = _annotations(section)
    for config_field in dataclasses.fields(section):
        key, value = f"{prefix}{config_field.name}", getattr(section, config_field.name)
        allowed = range_of(config_field)
        if allowed is not None and not allowed.allows(value):
            raise ConfigError(f"{key}={value}: must be {allowed.describe(isinstance(value, int))}")
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > INT64_MAX:
            raise ConfigError(f"{key}={value}: must be an integer of at most 64 bits (<= {INT64_MAX})")
        choices = _choices(annotations[config_field.name])
        if choices and value not in choices:
            raise ConfigError(f"{key} must be {spoken_choices(choices)}")
