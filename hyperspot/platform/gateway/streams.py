"""Streamed responses: sent piece by piece, and stopped when the client goes away."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import falcon.asgi

logger = logging.getLogger("hyperspot.gateway")


async def _disconnected(receive: Callable[[], Awaitable[Mapping[str, Any]]]) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def until_disconnected(
    req: falcon.asgi.Request, chunks: AsyncIterator[bytes], label: str
) -> AsyncIterator[bytes]:
    """``chunks`` until they end or the client disconnects, whichever comes first.

    Once the client is gone uvicorn's send() does nothing, so without this a stream would run to
    its end for no one. Each next piece races the disconnect; either way ``chunks`` is closed, so
    the producer's ``finally`` blocks run (e.g. to record what was sent). A producer that fails
    half-way ends the stream (the status is sent already): logged, never raised into the server.
    """
    # Falcon keeps the ASGI receive callable; after the body was read it only reports the end.
    watcher = asyncio.ensure_future(_disconnected(req._receive))
    iterator = aiter(chunks)
    try:
        while True:
            following = asyncio.ensure_future(anext(iterator))
            await asyncio.wait({following, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if not following.done():
                following.cancel()
                with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                    await following
                logger.info("%s: the client disconnected during the stream", label)
                return
            try:
                chunk = following.result()
            except StopAsyncIteration:
                return
            except Exception as error:
                logger.error("%s: the stream failed", label, exc_info=error)
                return
            yield chunk
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        close = getattr(iterator, "aclose", None)
        if close is not None:
            await close()
