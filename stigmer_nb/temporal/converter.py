"""The data converter: temporalio's JSON converter, with a fast path for our wire dataclasses.

temporalio rebuilds dataclasses from JSON through ``typing.get_type_hints`` on every value; for
progress batches (hundreds of small dataclasses a second) that was the largest CPU cost of the
lab. Here each wire type's fields are resolved once and rebuilt directly.
"""

import dataclasses
import types
import typing
from collections.abc import Callable
from typing import Any

from temporalio.converter import (
    AdvancedJSONEncoder,
    CompositePayloadConverter,
    DataConverter,
    DefaultPayloadConverter,
    JSONPlainPayloadConverter,
    JSONTypeConverter,
    PayloadCodec,
)

from ..settings import Settings
from . import types as wire
from .codec import SecretSealingCodec, SecretValues, load_key

__all__ = ["StigmerPayloadConverter", "data_converter", "sealing_converter"]

_Build = Callable[[Any], Any]
_WIRE_TYPES = tuple(getattr(wire, name) for name in wire.__all__)


def _builder(hint: Any) -> _Build | None:
    """How to rebuild a value of ``hint`` from JSON, or None when no work is needed."""
    if hint in _WIRE_TYPES:
        return _dataclass_builder(hint)
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            build = _builder(inner[0])
            return None if build is None else (lambda v: None if v is None else build(v))
        return None
    if origin is list and args:
        build = _builder(args[0])
        return None if build is None else (lambda v: [build(x) for x in v])
    return None


_plans: dict[type, _Build] = {}


def _dataclass_builder(cls: type) -> _Build:
    plan = _plans.get(cls)
    if plan is not None:
        return plan
    hints = typing.get_type_hints(cls)
    fields = [(f.name, _builder(hints[f.name])) for f in dataclasses.fields(cls)]

    def build(value: Any) -> Any:
        kwargs = {}
        for name, field_build in fields:
            if name in value:
                raw = value[name]
                kwargs[name] = field_build(raw) if field_build is not None and raw is not None else raw
        return cls(**kwargs)

    _plans[cls] = build
    return build


class _WireTypes(JSONTypeConverter):
    def to_typed_value(self, hint: type, value: Any) -> Any:
        if hint in _WIRE_TYPES and isinstance(value, dict):
            return _dataclass_builder(hint)(value)
        return JSONTypeConverter.Unhandled


class _WireEncoder(AdvancedJSONEncoder):
    """Wire dataclasses become dicts field by field (``dataclasses.asdict`` deep-copies them)."""

    def default(self, o: Any) -> Any:
        if type(o) in _WIRE_TYPES:
            return {f.name: getattr(o, f.name) for f in dataclasses.fields(o)}
        return super().default(o)


class StigmerPayloadConverter(CompositePayloadConverter):
    """temporalio's default converters, the JSON one with the wire-type fast paths."""

    def __init__(self) -> None:
        converters = [
            JSONPlainPayloadConverter(encoder=_WireEncoder, custom_type_converters=[_WireTypes()])
            if isinstance(c, JSONPlainPayloadConverter)
            else c
            for c in DefaultPayloadConverter.default_encoding_payload_converters
        ]
        super().__init__(*converters)


def data_converter(codec: PayloadCodec | None = None) -> DataConverter:
    """The converter every stigmer_nb client uses (lab, CLI, worker processes)."""
    return DataConverter(payload_converter_class=StigmerPayloadConverter, payload_codec=codec)


def sealing_converter(settings: Settings, values: SecretValues | None = None) -> DataConverter:
    """``data_converter`` sealing secrets with the key of ``settings`` (the lab's and its workers')."""
    return data_converter(
        SecretSealingCodec(
            load_key(settings.codec_key, settings.home), values if values is not None else SecretValues()
        )
    )
