"""The FastAPI application: OpenAI-compatible chat completions with grounding and the factuality gate,
``/v1/models``, ``/health`` and the web chat page at ``/``.

``create_app(generator, answerer, settings)`` is the seam: the CLI passes the transformers engine or the
vLLM proxy, tests pass a scripted generator with a known (wrong) answer.
"""
from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any, AsyncIterator

from fastapi import FastAPI, Header, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from starlette.requests import ClientDisconnect

from .answer import Answerer, Turn, collect, stream_turn
from .errors import APIError, error_response, install_handlers
from .generation import GenerationError, GenParams, Generator, Piece, PromptTooLong
from .limits import Admission, BodyLimit, check_api_key
from .protocol import ChatCompletionRequest, chunk_body, completion_body, new_id, now, parse_request
from .settings import ServeSettings

log = logging.getLogger("studyabroadgpt.serve")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
# The page loads only its own script and style files and talks only to this server; nothing may frame it.
# img-src allows blob: because the review page fetches its stats plot with the adviser key header (an <img src>
# cannot send one) and shows it through URL.createObjectURL.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
                               "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}
STATIC = resources.files("studyabroadgpt") / "serve" / "static"


def create_app(generator: Generator, answerer: Answerer | None = None,
               settings: ServeSettings | None = None) -> FastAPI:
    settings = settings or ServeSettings()
    answerer = answerer or Answerer(None, None)
    admission = Admission(settings.max_concurrency, settings.max_queue, settings.queue_timeout_s)

    conversation_log = _open_log(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await generator.start()
        purger = (asyncio.create_task(_purge_forever(conversation_log, settings.log_retention_days))
                  if conversation_log is not None and settings.log_retention_days else None)
        log.info("ready", extra={"event": "ready", "model": generator.model_name, "rag": settings.rag,
                                 "gate": settings.gate})
        yield
        if purger is not None:
            purger.cancel()
        await generator.close()
        if conversation_log is not None:
            conversation_log.close()

    # With a key, the API description is behind the key too (served by the route below), not public.
    app = FastAPI(title="StudyAbroadGPT", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None if settings.api_key else "/openapi.json")
    app.state.admission, app.state.settings, app.state.generator = admission, settings, generator
    install_handlers(app)
    app.state.conversation_log = conversation_log
    if conversation_log is not None:
        from ..review.web import add_review_routes

        add_review_routes(app, conversation_log, settings.adviser_key, _kb_version(answerer), settings.api_key)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"])
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)

    @app.middleware("http")
    async def access_log(request: Request, call_next: Any) -> Any:
        # A caller's request id is echoed in a header and the log: only a short, plain token is taken as one.
        given = request.headers.get("x-request-id") or ""
        request.state.request_id = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex[:16]
        start = time.perf_counter()
        try:
            response = await call_next(request)
        except Exception:
            # Answer here rather than in an exception handler: Starlette re-raises after its 500 handler, which
            # makes uvicorn drop the keep-alive connection under the client's next request.
            log.exception("unhandled error", extra={"event": "error", "request_id": request.state.request_id})
            response = error_response(500, f"internal server error (request id {request.state.request_id})",
                                      "server_error", "internal_error")
        response.headers["X-Request-ID"] = request.state.request_id
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        log.info("request", extra={"event": "request", "request_id": request.state.request_id,
                                   "method": request.method, "path": request.url.path,
                                   "status": response.status_code,
                                   "ms": round((time.perf_counter() - start) * 1000, 1)})
        return response

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": generator.model_name, "rag": settings.rag, "gate": settings.gate,
                "auth": bool(settings.api_key),
                "feedback": conversation_log is not None, "load": admission.snapshot()}

    @app.get("/v1/models")
    async def list_models(authorization: str | None = Header(default=None)) -> dict[str, Any]:
        check_api_key(settings.api_key, authorization)
        return {"object": "list", "data": [{"id": generator.model_name, "object": "model", "created": now(),
                                            "owned_by": "studyabroadgpt"}]}

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(str(STATIC / "index.html"), media_type="text/html")

    @app.get("/static/{name}", include_in_schema=False)
    async def static(name: str) -> FileResponse:
        # Only the page's own flat files: no directories, no dotfiles.
        files = {p.name for p in STATIC.iterdir() if p.is_file()}
        if name not in files or name.startswith("."):
            raise APIError(404, f"no static file {name!r}", "not_found_error")
        types = {".js": "text/javascript", ".css": "text/css", ".html": "text/html", ".svg": "image/svg+xml"}
        suffix = name[name.rfind("."):]
        return FileResponse(str(STATIC / name), media_type=types.get(suffix, "application/octet-stream"))

    if settings.api_key:
        @app.get("/openapi.json", include_in_schema=False)
        async def openapi(authorization: str | None = Header(default=None)) -> JSONResponse:
            check_api_key(settings.api_key, authorization)
            return JSONResponse(app.openapi())

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request, authorization: str | None = Header(default=None)) -> Any:
        # The key is checked before the body is read: without it, a malformed body gets 401, not 400.
        check_api_key(settings.api_key, authorization)
        try:
            raw = await request.body()
        except ClientDisconnect:  # gone, or cut off by the body-size cap (which has answered 413 already)
            raise APIError(400, "the client closed the request before its body arrived", "invalid_request_error",
                           "client_disconnected") from None
        body = parse_request(raw)
        params = _params(body, settings)
        use_rag = settings.rag if body.rag is None else (body.rag and settings.rag)
        rid = new_id()
        request.state.started = time.perf_counter()
        await admission.acquire()  # before retrieval: a full server answers 429 without doing any work
        release = admission.releaser()
        handed_off = False
        try:
            # Retrieval embeds the query (tens of ms of CPU): keep it off the event loop.
            turn = await asyncio.to_thread(answerer.prepare, body.plain_messages(), use_rag, settings.gate,
                                           body.answer_mode)
            if body.stream:
                handed_off = True  # the response releases the slot when the stream ends, however it ends
                return _SlotStreamingResponse(_sse(generator, answerer, turn, params, rid, request), release,
                                              media_type="text/event-stream",
                                              headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
            text, last = await _generate(generator, turn, params)
        finally:
            if not handed_off:
                release()
        if last.finish_reason == "timeout":
            raise APIError(504, f"generation did not finish within {settings.request_timeout_s:g}s",
                           "server_error", "timeout")
        # The gate and its audit are CPU work (a long answer: tens of ms): off the event loop, so /health and
        # streams keep answering meanwhile.
        final = await asyncio.to_thread(answerer.finish, turn, text)
        _log_answer(request, last, final.gate)
        await _record_turn(request, rid, turn, text, final, generator.model_name, answerer, settings)
        usage = _usage(last)
        return JSONResponse(completion_body(rid=rid, model=generator.model_name, content=final.content,
                                            finish_reason=last.finish_reason, usage=usage,
                                            sources=final.sources, gate=final.gate))

    return app


def _params(body: ChatCompletionRequest, settings: ServeSettings) -> GenParams:
    wanted = body.requested_tokens()
    if wanted is not None and wanted > settings.max_tokens_cap:
        raise APIError(400, f"max_tokens={wanted} is above this server's cap of {settings.max_tokens_cap}",
                       "invalid_request_error", "max_tokens_too_large", "max_tokens")
    return GenParams(max_tokens=wanted or min(settings.default_max_tokens, settings.max_tokens_cap),
                     temperature=body.temperature, top_p=body.top_p, seed=body.seed,
                     timeout_s=settings.request_timeout_s, repetition_penalty=settings.repetition_penalty,
                     no_repeat_ngram_size=settings.no_repeat_ngram_size)


async def _generate(generator: Generator, turn: Turn, params: GenParams) -> tuple[str, Piece]:
    try:
        return await collect(generator, turn, params)  # the one collect path, shared with the chat and eval
    except PromptTooLong as exc:
        raise APIError(400, str(exc), "invalid_request_error", "context_length_exceeded", "messages") from None
    except GenerationError as exc:
        raise APIError(502, f"the model backend failed: {exc}", "server_error", "backend_error") from None


class _SlotStreamingResponse(StreamingResponse):
    """A streaming response that frees its generation slot when it finishes — also when the client left
    before the body started, in which case the body generator never runs its own cleanup."""

    def __init__(self, content: Any, release: Any, **kwargs: Any):
        super().__init__(content, **kwargs)
        self._release = release

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()


async def _sse(generator: Generator, answerer: Answerer, turn: Turn, params: GenParams, rid: str,
               request: Request) -> AsyncIterator[str]:
    """Stream the raw model text, then one last chunk with the gate's result.

    The gate needs the whole answer, so corrections cannot be applied to text already sent. The last chunk
    therefore carries (a) as delta content, a fact-check note, the caveat and the sources list, so a plain
    OpenAI client that just concatenates deltas still gets them, and (b) ``gate.content``: the full corrected
    answer, which our web page swaps in for the streamed text. A sentence the gate removes (a contradicted claim,
    a sentence whose only specifics are "(unverified)" and that cites no fact) was already streamed: the note
    names it ("removed “…”: its sentence's specifics are unverified …") and ``gate.changes`` records it, so the
    streamed and the non-streamed answer never differ without the difference being recorded.
    """
    model = generator.model_name

    def event(obj: dict[str, Any]) -> str:
        return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"

    parts: list[str] = []
    last = Piece(finish_reason="stop")
    try:
        yield event(chunk_body(rid=rid, model=model, delta={"role": "assistant", "content": ""}))
        try:
            # stream_turn: the shared stream path (stops a looping model early; no model for composed turns)
            async for piece in stream_turn(generator, turn, params):
                if piece.text:
                    parts.append(piece.text)
                    yield event(chunk_body(rid=rid, model=model, delta={"content": piece.text}))
                if piece.finish_reason is not None:
                    last = piece
        except TimeoutError:
            last = Piece(finish_reason="timeout")
        if last.finish_reason == "timeout":
            yield event({"error": {"message": f"generation did not finish within {params.timeout_s:g}s",
                                   "type": "server_error", "param": None, "code": "timeout"}})
            yield "data: [DONE]\n\n"
            return
        final = await asyncio.to_thread(answerer.finish, turn, "".join(parts))
        _log_answer(request, last, final.gate)
        await _record_turn(request, rid, turn, "".join(parts), final, model, answerer,
                           request.app.state.settings)
        yield event(chunk_body(rid=rid, model=model, delta={"content": final.tail} if final.tail else {},
                               finish_reason=last.finish_reason, usage=_usage(last), sources=final.sources,
                               gate=final.gate))
        yield "data: [DONE]\n\n"
    except (PromptTooLong, GenerationError) as exc:
        # Headers are already sent: report the error in-stream the way OpenAI does.
        code = "context_length_exceeded" if isinstance(exc, PromptTooLong) else "backend_error"
        yield event({"error": {"message": str(exc), "type": "invalid_request_error" if code.startswith("context")
                               else "server_error", "param": None, "code": code}})
        yield "data: [DONE]\n\n"
    except Exception:
        log.exception("stream failed", extra={"event": "error", "request_id": request.state.request_id})
        yield event({"error": {"message": f"internal server error (request id {request.state.request_id})",
                               "type": "server_error", "param": None, "code": "internal_error"}})
        yield "data: [DONE]\n\n"


def _usage(last: Piece) -> dict[str, int]:
    return {"prompt_tokens": last.prompt_tokens, "completion_tokens": last.completion_tokens,
            "total_tokens": last.prompt_tokens + last.completion_tokens}


def _log_answer(request: Request, last: Piece, gate: dict[str, Any]) -> None:
    log.info("answer", extra={"event": "answer", "request_id": request.state.request_id,
                              "finish_reason": last.finish_reason, "completion_tokens": last.completion_tokens,
                              "gate_changes": len(gate.get("changes", []))})


def _open_log(settings: ServeSettings) -> Any:
    if not settings.log_db:
        return None
    from ..review.store import LogStore

    return LogStore(settings.log_db)


def _kb_version(answerer: Answerer) -> str | None:
    kb = getattr(getattr(answerer, "searcher", None), "kb", None)
    return getattr(kb, "version", None)


async def _purge_forever(store: Any, days: int) -> None:
    while True:
        try:
            n = await asyncio.to_thread(store.purge, days)
            log.info("log retention", extra={"event": "retention", "deleted_turns": n, "days": days})
        except Exception:  # noqa: BLE001 - a failed purge must not take the server down; it is retried
            log.exception("log retention failed", extra={"event": "error"})
        await asyncio.sleep(6 * 3600)


async def _record_turn(request: Request, rid: str, turn: Turn, raw: str, final: Any, model_id: str,
                       answerer: Answerer, settings: ServeSettings) -> None:
    """Write the answered turn to the conversation log (opt-in), off the event loop. A logging failure is
    logged, never shown to the student: the answer has been produced and must be delivered."""
    store = request.app.state.conversation_log
    if store is None:
        return
    import hashlib

    conv = request.headers.get("x-conversation-id", "").strip()[:64]
    if not conv:  # a plain OpenAI client sends no id: the same opening question groups one conversation
        first = next((m["content"] for m in turn.messages if m["role"] == "user"), "")
        conv = "h-" + hashlib.sha256(first.encode("utf-8", "replace")).hexdigest()[:16]
    latency = (time.perf_counter() - getattr(request.state, "started", time.perf_counter())) * 1000
    try:
        await asyncio.to_thread(
            store.record_turn, request_id=rid, conversation_id=conv, messages=turn.messages, answer=final.content,
            raw_text=raw, gate=final.gate, sources=final.sources, kb_version=_kb_version(answerer),
            model_id=model_id, adapter_id=settings.adapter_id, latency_ms=latency)
    except Exception:  # noqa: BLE001
        log.exception("conversation log write failed", extra={"event": "error", "request_id": rid})
