"""Admission control, body-size cap and API-key check.

Admission is by counting, not by a web-server setting, so that a full server answers quickly and clearly
(429 with Retry-After when the queue is full, 503 when a queued request waited too long) instead of piling up
requests until memory runs out.
"""
from __future__ import annotations

import asyncio
import hmac
from collections import deque
from typing import Any

from .errors import APIError


class Admission:
    """Generation slots, counted before any await.

    A request either takes a free slot, joins a bounded queue or is refused (429), all in one synchronous step:
    with the count taken after an await, 64 simultaneous requests all saw a free server, none got a 429, and 18
    then waited out the queue timeout (503). A freed slot passes straight to the longest-waiting request.
    """

    def __init__(self, max_concurrency: int, max_queue: int, queue_timeout_s: float):
        self.max_concurrency, self.max_queue, self.queue_timeout_s = max_concurrency, max_queue, queue_timeout_s
        self.active = 0
        self.rejected = 0
        self._waiters: deque[asyncio.Future] = deque()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    async def acquire(self) -> None:
        # Everything up to the first await runs without yielding to another request.
        if self.active < self.max_concurrency and not self._waiters:
            self.active += 1
            return
        if len(self._waiters) >= self.max_queue:
            self.rejected += 1
            raise APIError(429, f"server is at capacity ({self.active} running, {self.waiting} queued); retry shortly",
                           "rate_limit_error", "server_busy", headers={"Retry-After": "2"})
        slot = asyncio.get_running_loop().create_future()
        self._waiters.append(slot)
        try:
            await asyncio.wait_for(asyncio.shield(slot), self.queue_timeout_s)
        except asyncio.TimeoutError:
            if slot.done():
                return  # the slot was handed over just as the wait ran out: take it
            self._leave(slot)
            self.rejected += 1
            raise APIError(503, f"no generation slot became free within {self.queue_timeout_s:g}s; retry later",
                           "server_error", "queue_timeout", headers={"Retry-After": "5"}) from None
        except asyncio.CancelledError:  # the client went away while queued
            if slot.done():
                self.release()  # it had been handed a slot: pass it on
            else:
                self._leave(slot)
            raise

    def _leave(self, slot: asyncio.Future) -> None:
        slot.cancel()
        try:
            self._waiters.remove(slot)
        except ValueError:
            pass

    def release(self) -> None:
        while self._waiters:
            slot = self._waiters.popleft()
            if not slot.done():
                slot.set_result(None)  # the slot moves to the next in line; ``active`` stays the same
                return
        self.active -= 1

    def releaser(self):
        """An idempotent release for one acquired slot (safe to call from several cleanup paths)."""
        done = False

        def release() -> None:
            nonlocal done
            if not done:
                done = True
                self.release()

        return release

    def snapshot(self) -> dict[str, Any]:
        return {"active": self.active, "queued": self.waiting, "max_concurrency": self.max_concurrency,
                "max_queue": self.max_queue, "rejected": self.rejected}


class BodyLimit:
    """ASGI middleware: refuse bodies over ``max_bytes`` with 413, by header or by counting a chunked body."""

    def __init__(self, app: Any, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            return await self._reject(send)
        seen = 0
        responded = False

        async def counted() -> dict:
            # A chunked body has no length header: count it, and once over the cap answer 413 ourselves and
            # tell the app the client went away (FastAPI would otherwise turn our error into a generic 400).
            nonlocal seen, responded
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes and not responded:
                    responded = True
                    await self._reject(send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: dict) -> None:
            if not responded:
                await send(message)

        await self.app(scope, counted, guarded_send)

    async def _reject(self, send: Any) -> None:
        import json

        body = json.dumps(_too_large(self.max_bytes).body()).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


def _too_large(max_bytes: int) -> APIError:
    return APIError(413, f"request body is larger than the server's limit of {max_bytes} bytes",
                    "invalid_request_error", "request_too_large")


def check_api_key(expected: str | None, authorization: str | None) -> None:
    """Raise 401 unless ``Authorization: Bearer <key>`` matches (no-op when the server has no key)."""
    if not expected:
        return
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected.encode()):
        raise APIError(401, "invalid or missing API key (send 'Authorization: Bearer <key>')",
                       "authentication_error", "invalid_api_key")
