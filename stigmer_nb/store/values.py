"""Encoding values for JSON columns."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["document_hash", "dumps"]


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str)


def dumps(value: Any) -> str | None:
    """JSON text for a JSON column (None stays NULL)."""
    if value is None:
        return None
    return _ENCODER.encode(value)


def document_hash(document: Any) -> str:
    """A document's version: the SHA-256 of its canonical JSON (keys sorted), as hex.

    Two documents that differ only in key order or YAML formatting are the same version.
    """
    import hashlib

    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()
