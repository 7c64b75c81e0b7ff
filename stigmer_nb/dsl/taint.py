"""Secret taint: a string computed from a secret is a secret too.

A runtime secret is redacted wherever it appears literally, but ``$secrets.TOK | ascii_downcase``
or ``$secrets.TOK | @base64`` would reach the history and Temporal in clear. So after each
evaluation that touched secret material (it names ``$secrets``, or its input holds a secret or a
string derived from one), the engine runs the same expression again with every secret replaced by
a placeholder: each result string that changed depends on a secret. Those strings are redacted like
the secrets themselves (in reported transitions, the workflow output, errors) and handed to the
process's payload codec, which from then on seals any payload carrying them.

Numbers computed from secrets (a length, a PIN's value) are not hidden.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import orjson

from ..temporal.codec import SecretValues
from .jqpool import dumps

__all__ = ["Taint"]

_MIN_LENGTH = 4
"""Shorter derived strings (a first letter, "abc") would redact ordinary words everywhere."""
_MAX_DERIVED = 1_000
_PLACEHOLDER = "***"
_SECRET_ARGS = (b"$secrets", b"$authorization")


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


class Taint:
    """The secret values of one execution and the strings derived from them."""

    def __init__(self, secrets: Iterable[str], sink: Callable[[list[str]], None] | None = None) -> None:
        self.secrets = tuple(s for s in secrets if s)
        self._values = SecretValues()
        self._values.add(self.secrets)
        self._sink = sink
        self.derived: list[str] = []

    @property
    def active(self) -> bool:
        """False for an execution without secrets: nothing to check, nothing to redact."""
        return bool(self.secrets)

    def derive(
        self,
        rerun: Callable[[Any, Mapping[str, Any]], Any],
        source: Any,
        data: Any,
        args: Mapping[str, Any],
        result: Any,
    ) -> None:
        """Learn the strings of ``result`` that depend on a secret (``rerun`` evaluates ``source``
        again on other data and arguments)."""
        fresh = {
            s for s in _strings(result) if len(s) >= _MIN_LENGTH and not self._values.found_in(s.encode())
        }
        if not fresh:
            return
        plain = {k: v for k, v in args.items() if k != "secrets"}
        blob = dumps([data, plain])
        if not any(name in dumps(source) for name in _SECRET_ARGS) and not self._values.found_in(blob):
            return
        try:
            masked_data, masked_args = orjson.loads(self._values.redact(blob.decode()))
            masked_args["secrets"] = dict.fromkeys(args.get("secrets") or {}, _PLACEHOLDER)
            unchanged = set(_strings(rerun(masked_data, masked_args)))
        except Exception:  # the expression needs the real value (tonumber of a PIN …): all of it is secret
            unchanged = set()
        derived = sorted(s for s in fresh if s not in unchanged)
        room = _MAX_DERIVED - len(self.derived)
        if derived and room > 0:
            derived = derived[:room]
            self.derived.extend(derived)
            self._values.add(derived, derived=True)
            if self._sink is not None:
                self._sink(derived)

    def mark(self, value: Any) -> None:
        """Treat every string of ``value`` as derived (e.g. the fields of a JSON secret)."""
        fresh = sorted({s for s in _strings(value) if s and not self._values.found_in(s.encode())})
        if fresh:
            self.derived.extend(fresh)
            self._values.add(fresh, derived=True)
            if self._sink is not None:
                self._sink(fresh)

    def redact_text(self, text: str) -> str:
        """JSON (or any) text with every secret and derived string replaced by ``***``."""
        return self._values.redact(text) if self.active else text

    def clean(self, value: Any) -> Any:
        """``value`` with every secret and derived string replaced by ``***``."""
        if not self.active or value is None:
            return value
        text = json.dumps(value, separators=(",", ":"), default=str)
        redacted = self._values.redact(text)
        return value if redacted is text else json.loads(redacted)
