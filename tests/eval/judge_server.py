"""A small, deterministic OpenAI-compatible chat server for tests (a real HTTP server, not a mocked client).

* Judge requests (the user message holds "[Answer A]" and "[Answer B]"): an answer scores accuracy 3 if it
  tells the student to check the official source, else 1; helpfulness grows with length (capped at 3); the
  higher total is preferred, equal totals are a tie. Questions containing GARBAGE always get prose (never
  parseable), RETRY gets prose on the first attempt only, FENCE gets the JSON inside a code fence with prose.
  POSITION makes the judge always prefer Answer A (a maximally position-biased judge). FLAGS adds the rubric's
  per-answer flags (an answer containing LOOP is incoherent; one without "official" misses its caveat).
* Any other request is an "assistant": it echoes the question with a caveat, reporting token usage, and stops
  with finish_reason "length" when max_tokens is below 8.
"""
from __future__ import annotations

import json
import re
import time
from contextlib import contextmanager

from fastapi import FastAPI
from pydantic import BaseModel

from ..conftest import running


class ChatRequest(BaseModel):
    model: str = "default"
    messages: list[dict]
    temperature: float | None = None
    max_tokens: int | None = None


def _score(text: str) -> tuple[int, int]:
    return (3 if "official" in text.lower() else 1), min(3, len(text.split()) // 5)


def _judge_reply(messages: list[dict]) -> str:
    user = messages[1]["content"]
    question = user.split("[Answer A]")[0]
    a = re.search(r"\[Answer A\]\n(.*?)\n\n\[Answer B\]", user, re.S).group(1)
    b = user.split("[Answer B]\n", 1)[1]
    if "GARBAGE" in question or ("RETRY" in question and len(messages) == 2):
        return "I think both answers have merits, but I cannot decide."
    acc_a, help_a = _score(a)
    acc_b, help_b = _score(b)
    if "POSITION" in question:
        pref = "A"
    else:
        pref = "A" if acc_a + help_a > acc_b + help_b else "B" if acc_b + help_b > acc_a + help_a else "tie"
    obj = {"accuracy_a": acc_a, "helpfulness_a": help_a, "accuracy_b": acc_b, "helpfulness_b": help_b,
           "preference": pref, "reason": "deterministic test judge"}
    if "FLAGS" in question:  # the rubric's flags: LOOP in an answer makes it incoherent, no "official" no caveat
        for side, text in (("a", a), ("b", b)):
            obj[f"flags_{side}"] = {"incoherent": "LOOP" in text, "invented_specifics": False,
                                    "confident_error": False, "missing_caveat": "official" not in text.lower(),
                                    "premise_accepted": False}
    if "FENCE" in question:
        return "Here is my verdict:\n```json\n" + json.dumps(obj, indent=2) + "\n```\nThanks."
    return json.dumps(obj)


def make_app() -> FastAPI:
    app = FastAPI()
    app.state.calls = 0

    @app.post("/v1/chat/completions")
    def chat(req: ChatRequest) -> dict:
        app.state.calls += 1
        msgs = req.messages
        is_judge = len(msgs) >= 2 and "[Answer A]" in str(msgs[1].get("content", ""))
        if is_judge:
            content, finish = _judge_reply(msgs), "stop"
        else:
            question = msgs[-1]["content"]
            content = f"About '{question}': please check the official source for current rules."
            finish = "stop"
            if req.max_tokens is not None and req.max_tokens < 8:
                content, finish = " ".join(content.split()[:req.max_tokens]), "length"
        n = len(content.split())
        return {"id": f"cmpl-{app.state.calls}", "object": "chat.completion", "created": int(time.time()),
                "model": req.model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                             "finish_reason": finish}],
                "usage": {"prompt_tokens": 10, "completion_tokens": n, "total_tokens": 10 + n}}

    return app


@contextmanager
def serve():
    """Run the app on a free loopback port (the tests' one loopback server, ``tests/conftest.py``'s
    ``running``); yields the OpenAI base URL."""
    with running(make_app()) as base:
        yield f"{base}/v1"
