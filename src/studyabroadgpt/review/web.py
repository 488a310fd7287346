"""The ``/review`` page and its JSON API, behind an adviser key that is separate from the API key.

Students hold the API key (or none); advisers hold the adviser key. The page itself is a static file with no
data in it; every piece of data comes from the API with ``X-Adviser-Key``, and the page renders it with
``textContent`` only, so nothing a student or a model wrote can become markup.
"""
from __future__ import annotations

import asyncio
import hmac
from importlib import resources
from typing import Any

from fastapi import APIRouter, FastAPI, Header, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel, Field

from .store import ACTIONS, LogStore, ReviewError, turn_dict

STATIC = resources.files("studyabroadgpt") / "review" / "static"


class ReviewBody(BaseModel):
    reviewer: str = Field(min_length=1, max_length=128)
    action: str
    corrected_answer: str | None = Field(default=None, max_length=20000)
    fact_id: str | None = Field(default=None, max_length=128)
    note: str | None = Field(default=None, max_length=4000)
    proposal: dict[str, Any] | None = None


class FeedbackBody(BaseModel):
    id: str = Field(min_length=1, max_length=64)   # the chat completion id the student's page received
    rating: int                                    # 1 = thumbs up, -1 = thumbs down
    comment: str | None = Field(default=None, max_length=2000)


def _err(status: int, message: str, code: str, param: str | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": "invalid_request_error" if status < 500
                                   else "server_error", "param": param, "code": code}}, status_code=status)


def add_review_routes(app: FastAPI, store: LogStore, adviser_key: str | None, kb_version: str | None,
                      api_key: str | None) -> None:
    """Mount ``/review`` (page + API) and ``POST /v1/feedback`` (the chat page's thumbs) on ``app``."""
    router = APIRouter()

    def authorised(given: str | None) -> bool:
        # No adviser key configured: the review API is closed (conversations are sensitive), not open.
        return bool(adviser_key) and given is not None and hmac.compare_digest(given.encode(), adviser_key.encode())

    def denied() -> JSONResponse:
        return _err(401, "invalid or missing adviser key (send 'X-Adviser-Key: <key>'; the server sets it with "
                    "--adviser-key or SAGPT_ADVISER_KEY)", "invalid_adviser_key")

    @router.get("/review", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(str(STATIC / "review.html"), media_type="text/html")

    @router.get("/review/static/{name}", include_in_schema=False)
    async def static(name: str) -> Response:
        files = {p.name for p in STATIC.iterdir() if p.is_file()}
        if name not in files or name.startswith("."):
            return _err(404, f"no static file {name!r}", "not_found")
        media = {"js": "text/javascript", "css": "text/css"}.get(name.rsplit(".", 1)[-1], "text/plain")
        return FileResponse(str(STATIC / name), media_type=media)

    @router.get("/review/api/queue")
    async def queue(x_adviser_key: str | None = Header(default=None), status: str = Query("pending"),
                    limit: int = Query(50, ge=1, le=500), offset: int = Query(0, ge=0)) -> Any:
        if not authorised(x_adviser_key):
            return denied()
        rows = await asyncio.to_thread(store.queue, status if status != "all" else None, limit, offset)
        return {"items": [turn_dict(t) for t in rows]}

    @router.get("/review/api/turns/{turn_id}")
    async def turn(turn_id: int, x_adviser_key: str | None = Header(default=None)) -> Any:
        if not authorised(x_adviser_key):
            return denied()
        try:
            return turn_dict(await asyncio.to_thread(store.get, turn_id), with_actions=True)
        except ReviewError as exc:
            return _err(404, str(exc), "not_found")

    @router.post("/review/api/turns/{turn_id}/actions")
    async def act(turn_id: int, body: ReviewBody, x_adviser_key: str | None = Header(default=None)) -> Any:
        if not authorised(x_adviser_key):
            return denied()
        try:
            a = await asyncio.to_thread(store.review, turn_id, reviewer=body.reviewer, action=body.action,
                                        corrected_answer=body.corrected_answer, fact_id=body.fact_id,
                                        note=body.note, proposal=body.proposal, kb_version=kb_version)
        except ReviewError as exc:
            status = 404 if "no logged answer" in str(exc) else 400
            return _err(status, str(exc), "invalid_review" if status == 400 else "not_found")
        return {"id": a.id, "action": a.action, "turn_id": turn_id, "saved": True}

    @router.get("/review/api/actions")
    async def actions_list(x_adviser_key: str | None = Header(default=None)) -> Any:
        if not authorised(x_adviser_key):
            return denied()
        return {"actions": list(ACTIONS)}

    @router.get("/review/api/stats")
    async def stats(x_adviser_key: str | None = Header(default=None)) -> Any:
        if not authorised(x_adviser_key):
            return denied()
        from .stats import review_stats

        return await asyncio.to_thread(review_stats, store)

    @router.get("/review/api/stats.png")
    async def stats_png(x_adviser_key: str | None = Header(default=None)) -> Any:
        if not authorised(x_adviser_key):
            return denied()
        return Response(await asyncio.to_thread(_stats_png, store), media_type="image/png")

    @router.post("/v1/feedback")
    async def feedback(request: Request, authorization: str | None = Header(default=None)) -> Any:
        from pydantic import ValidationError

        from ..serve.limits import check_api_key

        check_api_key(api_key, authorization)  # the key first: an anonymous caller learns nothing about bodies
        try:
            body = FeedbackBody.model_validate_json(await request.body())
        except ValidationError as exc:
            first = exc.errors()[0]
            return _err(400, f"{'.'.join(str(x) for x in first['loc']) or 'body'}: {first['msg']}",
                        "invalid_feedback")
        try:
            await asyncio.to_thread(store.add_feedback, body.id, body.rating, body.comment)
        except ReviewError as exc:
            return _err(404 if "no logged answer" in str(exc) else 400, str(exc), "invalid_feedback")
        return {"saved": True}

    app.include_router(router)


def _stats_png(store: LogStore) -> bytes:
    import tempfile
    from pathlib import Path

    from .stats import plot_stats, review_stats

    with tempfile.TemporaryDirectory() as tmp:
        return plot_stats(review_stats(store), Path(tmp) / "stats.png").read_bytes()
