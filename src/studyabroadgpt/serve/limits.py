"""Admission control, body-size cap and API-key check.

Admission is by counting, not by a web-server setting, so that a full server answers quickly and clearly
(429 with Retry-After when the queue is full, 503 when a queued request waited too long) instead of piling up
requests until memory runs out.
"""
from __future__ import annotations

import asyncio
import hmac
from typing import Any

from .errors import APIError


class Admission:
    def __init__(self, max_concurrency: int, max_queue: int, queue_timeout_s: float):
        self.max_concurrency, self.max_queue, self.queue_timeout_s = max_concurrency, max_queue, queue_timeout_s
        self.active = 0
        self.waiting = 0
        self.rejected = 0
        self._sem: asyncio.Semaphore | None = None

    def _semaphore(self) -> asyncio.Semaphore:
        if self._sem is None:  # created inside the server's event loop
            self._sem = asyncio.Semaphore(self.max_concurrency)
        return self._sem

    async def acquire(self) -> None:
        sem = self._semaphore()
        if self.active >= self.max_concurrency and self.waiting >= self.max_queue:
            self.rejected += 1
            raise APIError(429, f"server is at capacity ({self.active} running, {self.waiting} queued); retry shortly",
                           "rate_limit_error", "server_busy", headers={"Retry-After": "2"})
        self.waiting += 1
        try:
            await asyncio.wait_for(sem.acquire(), self.queue_timeout_s)
        except asyncio.TimeoutError:
            self.rejected += 1
            raise APIError(503, f"no generation slot became free within {self.queue_timeout_s:g}s; retry later",
                           "server_error", "queue_timeout", headers={"Retry-After": "5"}) from None
        finally:
            self.waiting -= 1
        self.active += 1

    def release(self) -> None:
        self.active -= 1
        self._semaphore().release()

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
