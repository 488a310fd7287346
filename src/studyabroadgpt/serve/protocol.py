"""The OpenAI chat-completions wire format (the subset we serve), plus our two extra fields.

Responses carry ``sources`` (the knowledge-base facts behind the numbered citations) and ``gate`` (what the
factuality gate changed) next to the standard fields; OpenAI clients ignore unknown fields, so they work
unchanged while our web page and our own clients read them.
"""
from __future__ import annotations

import time
import uuid
from typing import Any, Literal

import json

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import APIError

SEED_MIN, SEED_MAX = -(2**63), 2**63 - 1  # a 64-bit seed, what torch and vLLM take (2**70 was a 502 from torch)


def _valid_unicode(text: str, what: str) -> str:
    """JSON may carry a lone UTF-16 surrogate ("\\ud800"); it is not text and breaks the tokenizer and logs."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"{what} holds a lone UTF-16 surrogate at character {exc.start} (send valid Unicode "
                         "text)") from None
    return text


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "user", "assistant", "developer", "tool"]
    content: str | list[dict[str, Any]] | None = None

    @field_validator("content")
    @classmethod
    def _text_only(cls, v: Any) -> str:
        # Some clients send content as a list of typed parts; we serve text, so we join the text parts.
        if v is None:
            return ""
        if isinstance(v, list):
            parts = []
            for part in v:
                if part.get("type") != "text" or not isinstance(part.get("text"), str):
                    raise ValueError("only text content parts are supported")
                parts.append(part["text"])
            v = "".join(parts)
        return _valid_unicode(v, "content")


class ChatCompletionRequest(BaseModel):
    # Unknown OpenAI parameters (logprobs, tools, ...) are ignored rather than rejected, like most servers do.
    model_config = ConfigDict(extra="ignore")

    model: str | None = None
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    seed: int | None = Field(default=None, ge=SEED_MIN, le=SEED_MAX)
    user: str | None = None
    # Our extension: skip grounding for this request (A/B comparisons from the web page or eval scripts).
    rag: bool | None = None
    # Our extension: generate | compose | auto for this request (default: the server's --answer-mode).
    answer_mode: Literal["generate", "compose", "auto"] | None = None

    @field_validator("model", "user")
    @classmethod
    def _text(cls, v: str | None) -> str | None:
        return v if v is None else _valid_unicode(v, "value")

    @field_validator("messages")
    @classmethod
    def _ends_with_user(cls, v: list[ChatMessage]) -> list[ChatMessage]:
        if not any(m.role == "user" for m in v):
            raise ValueError("messages must contain at least one user message")
        return v

    def requested_tokens(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    def plain_messages(self) -> list[dict[str, str]]:
        # "developer" is OpenAI's new name for "system"; chat templates only know the old one.
        role = {"developer": "system"}
        return [{"role": role.get(m.role, m.role), "content": m.content or ""} for m in self.messages
                if m.role != "tool"]


def parse_request(raw: bytes) -> ChatCompletionRequest:
    """The request body as a :class:`ChatCompletionRequest`, or a 400 that says what is wrong with it.

    Parsed here rather than by FastAPI's body parameter so that the API key is checked first (a caller without
    it learns nothing about the body format), and so that bodies the JSON parser itself chokes on — 100,000
    nested brackets (RecursionError), a 5,000-digit number — are 400s, not 500s.
    """
    try:
        data = json.loads(raw)
    except RecursionError:
        raise APIError(400, "request body is nested too deeply", "invalid_request_error", "invalid_request") from None
    except UnicodeDecodeError:
        raise APIError(400, "request body is not valid UTF-8 JSON", "invalid_request_error",
                       "invalid_request") from None
    except ValueError as exc:
        message = "request body is not valid JSON"
        if "digits" in str(exc):  # int() refuses numbers over 4,300 digits (CVE-2020-10735)
            message = "request body holds a number with too many digits"
        raise APIError(400, message, "invalid_request_error", "invalid_request") from None
    if not isinstance(data, dict):
        raise APIError(400, "request body must be a JSON object", "invalid_request_error", "invalid_request")
    try:
        return ChatCompletionRequest.model_validate(data)
    except ValidationError as exc:
        # the server's one validation-error handler words it ("messages.0.role: Input should be ...")
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False,
                                                                                           include_input=False)]
                                     ) from None
    except RecursionError:
        raise APIError(400, "request body is nested too deeply", "invalid_request_error", "invalid_request") from None


def new_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex[:24]


def now() -> int:
    return int(time.time())


def completion_body(*, rid: str, model: str, content: str, finish_reason: str, usage: dict[str, int],
                    sources: list[dict], gate: dict) -> dict[str, Any]:
    return {
        "id": rid, "object": "chat.completion", "created": now(), "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                     "finish_reason": finish_reason, "logprobs": None}],
        "usage": usage, "sources": sources, "gate": gate,
    }


def chunk_body(*, rid: str, model: str, delta: dict[str, Any], finish_reason: str | None = None,
               **extra: Any) -> dict[str, Any]:
    body = {"id": rid, "object": "chat.completion.chunk", "created": now(), "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}]}
    body.update(extra)
    return body
