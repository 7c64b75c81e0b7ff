"""Connecting a Temporal client: a clear error, not a hang, when nothing answers.

Kept apart from the lab so that a CLI command that only steers an execution connects without
importing the lab (most of such a command's time).
"""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio.client import Client

from ..errors import TemporalUnreachableError
from ..settings import Settings

__all__ = ["connect_client"]


async def connect_client(target: str, settings: Settings, converter: Any) -> Client:
    """A client for ``target``; a clear error (not a hang) when nothing answers."""
    try:
        client = await asyncio.wait_for(
            Client.connect(target, namespace=settings.namespace, data_converter=converter),
            timeout=settings.connect_timeout,
        )
    except TimeoutError:
        raise TemporalUnreachableError(target, settings.connect_timeout) from None
    except Exception as exc:
        cause = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise TemporalUnreachableError(target, settings.connect_timeout, cause) from None
    return client
