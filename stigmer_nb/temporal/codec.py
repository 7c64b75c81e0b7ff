"""Sealing secret-bearing payloads so runtime secrets never sit in Temporal history in clear.

The codec knows the secret values of this process (the lab registers them at create time; a
remote runner learns them when it opens a sealed ``ExecutionContext`` or ``DSLInput``). Any
payload containing one is encrypted with AES-GCM under a key shared by the lab and its workers;
every other payload stays plain, so the Temporal UI still shows ordinary inputs and outputs.
"""

from __future__ import annotations

import base64
import json
import os
import re
import threading
import weakref
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

from ..errors import ConfigurationError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["SEALED_ENCODING", "SecretSealingCodec", "SecretValues", "load_key", "seal_also"]

SEALED_ENCODING = b"binary/stigmer-sealed"
_MAX_SECRETS = 10_000


def load_key(explicit: str | None, home: Path) -> bytes:
    """The sealing key: ``explicit`` (base64), else ``<home>/codec.key`` (created 0600 on first use)."""
    if explicit:
        try:
            key = base64.urlsafe_b64decode(explicit.encode())
        except (ValueError, TypeError):
            key = b""
        if len(key) != 32:
            raise ConfigurationError("STIGMER_NB_CODEC_KEY must be 32 bytes, base64url-encoded")
        return key
    path = home / "codec.key"
    if path.exists():
        key = base64.urlsafe_b64decode(path.read_bytes().strip())
        if len(key) == 32:
            return key
    home.mkdir(parents=True, exist_ok=True)
    key = os.urandom(32)  # what AESGCM.generate_key(bit_length=256) does
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(base64.urlsafe_b64encode(key))
    return key


class SecretValues:
    """The secret values this process knows, as the byte patterns they take inside JSON payloads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: OrderedDict[str, None] = OrderedDict()
        self._derived: OrderedDict[str, None] = OrderedDict()
        """Strings computed from secrets (kept apart: they never push a real secret out)."""
        self._pattern: re.Pattern[bytes] | None = None

    def add(self, values: Iterable[str], *, derived: bool = False) -> None:
        """Remember ``values`` (empty ones are ignored); ``derived`` for strings computed from secrets."""
        store = self._derived if derived else self._values
        with self._lock:
            changed = False
            for value in values:
                if value and value not in self._values and value not in self._derived:
                    store[value] = None
                    changed = True
                    if len(store) > _MAX_SECRETS:
                        store.popitem(last=False)
            if changed:
                forms = set()
                for value in (*self._values, *self._derived):
                    forms.add(value.encode())
                    forms.add(json.dumps(value)[1:-1].encode())  # as it appears inside a JSON string
                # Longest first: a secret inside a longer derived string is redacted once, whole.
                alternatives = sorted(forms, key=len, reverse=True)
                self._pattern = re.compile(b"|".join(re.escape(f) for f in alternatives))

    def found_in(self, data: bytes) -> bool:
        """True when ``data`` contains any known secret."""
        pattern = self._pattern
        return pattern is not None and pattern.search(data) is not None

    def redact(self, text: str) -> str:
        """``text`` with each known secret (plain or JSON-escaped) replaced by ``***`` (for logs)."""
        pattern = self._pattern
        if pattern is None:
            return text
        data = text.encode("utf-8", "surrogatepass")
        return pattern.sub(b"***", data).decode("utf-8", "surrogatepass") if pattern.search(data) else text

    def __len__(self) -> int:
        return len(self._values)


_CODECS: weakref.WeakSet[SecretSealingCodec] = weakref.WeakSet()


def seal_also(values: Sequence[str]) -> None:
    """Strings computed from secrets (by workflow code in this process): every codec of this
    process seals the payloads that carry them from now on, and the logs mask them."""
    for codec in list(_CODECS):
        codec.secrets.add(values, derived=True)


class SecretSealingCodec(PayloadCodec):
    """Encrypts payloads that contain a known secret; passes every other payload through."""

    def __init__(self, key: bytes, secrets: SecretValues) -> None:
        if len(key) != 32:
            raise ConfigurationError("the sealing key must be 32 bytes")
        self._key = key
        self._aead_once: AESGCM | None = None
        self.secrets = secrets
        _CODECS.add(self)

    @property
    def _aead(self) -> AESGCM:
        # Built on first use: most labs never seal anything, and the import costs start-up time.
        if self._aead_once is None:
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM

            self._aead_once = AESGCM(self._key)
        return self._aead_once

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Seal the payloads that carry secrets."""
        out = []
        for payload in payloads:
            if self.secrets.found_in(payload.data):
                nonce = os.urandom(12)
                sealed = nonce + self._aead.encrypt(nonce, payload.SerializeToString(), None)
                out.append(Payload(metadata={"encoding": SEALED_ENCODING}, data=sealed))
            else:
                out.append(payload)
        return out

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Open sealed payloads (learning any ``secrets`` map they carry)."""
        out = []
        for payload in payloads:
            if payload.metadata.get("encoding") != SEALED_ENCODING:
                out.append(payload)
                continue
            data = payload.data
            inner = Payload.FromString(self._aead.decrypt(data[:12], data[12:], None))
            self._learn(inner.data)
            out.append(inner)
        return out

    def _learn(self, data: bytes) -> None:
        try:
            value = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            return
        if isinstance(value, dict) and isinstance(value.get("secrets"), dict):
            self.secrets.add(str(v) for v in value["secrets"].values())
