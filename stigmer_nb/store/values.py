"""Encoding values for JSON columns."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["dumps"]


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str)


def dumps(value: Any) -> str | None:
    """JSON text for a JSON column (None stays NULL)."""
    if value is None:
        return None
    return _ENCODER.encode(value)
