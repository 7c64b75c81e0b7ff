"""Durations as the DSL writes them: ``{days, hours, minutes, seconds, milliseconds}`` or ISO 8601."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

__all__ = ["DurationError", "parse_duration"]

_ISO = re.compile(
    r"^P(?:(?P<days>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)
_UNITS = ("days", "hours", "minutes", "seconds", "milliseconds")


class DurationError(ValueError):
    """A duration the DSL does not accept."""


def parse_duration(value: Any) -> timedelta:
    """A ``timedelta`` from the object form or an ISO 8601 string like ``PT1H30M``."""
    if isinstance(value, bool):
        raise DurationError(f"{value!r} is not a duration; use e.g. PT30S or {{seconds: 30}}")
    if isinstance(value, Mapping):
        unknown = set(value) - set(_UNITS)
        if unknown:
            raise DurationError(f"unknown duration field(s) {sorted(unknown)}; use {', '.join(_UNITS)}")
        if not value:
            raise DurationError("an empty duration; give at least one of " + ", ".join(_UNITS))
        try:
            parts = {k: float(v) for k, v in value.items()}
        except (TypeError, ValueError):
            raise DurationError(f"duration fields must be numbers, got {dict(value)!r}") from None
        if any(v < 0 for v in parts.values()):
            raise DurationError("durations cannot be negative")
        return timedelta(**parts)
    if isinstance(value, str):
        match = _ISO.match(value.strip())
        if not match or value.strip() in ("P", "PT") or value.strip().endswith("T"):
            raise DurationError(f"{value!r} is not an ISO 8601 duration like PT30S, PT1H or P1DT2H")
        parts = {k: float(v) for k, v in match.groupdict().items() if v is not None}
        return timedelta(**parts)
    if isinstance(value, int | float) and value >= 0:
        return timedelta(seconds=value)  # Stigmer's converter emits bare seconds
    raise DurationError(f"{value!r} is not a duration; use e.g. PT30S or {{seconds: 30}}")
