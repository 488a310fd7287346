"""The ``openai`` writer against a real OpenAI-compatible HTTP server started by the test.

The server (FastAPI + uvicorn on a free local port) answers /v1/chat/completions from the facts in the system
prompt, the way a well-behaved model would — except for one answer, where it changes a number. That
conversation must land in quarantine with the reason; every other one must be kept.
"""
from __future__ import annotations

import re
import socket
import threading
import time

import pytest

from studyabroadgpt.synth.generate import synthesize

FACT_LINE = re.compile(r"^\[(\d+)\] (.+) \(source: (.+), (https://\S+), as of (\S+)\)$", re.MULTILINE)


class FakeModelServer:
    def __init__(self):
        from fastapi import FastAPI

        self.requests: list[dict] = []
        self.corrupted: str | None = None  # the text of the one wrong answer
        app = FastAPI()

        @app.post("/v1/chat/completions")
        def chat(body: dict):
            self.requests.append(body)
            answer = self.write(body["messages"])
            return {"id": f"chatcmpl-{len(self.requests)}", "object": "chat.completion", "created": int(time.time()),
                    "model": body["model"],
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": answer}}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}

        self.app = app

    def write(self, messages: list[dict]) -> str:
        facts = FACT_LINE.findall(messages[0]["content"])
        body = "\n".join(f"- {statement} [{n}]" for n, statement, *_ in facts)
        if self.corrupted is None and len(self.requests) >= 3:
            # change the first figure of the first fact that has one: the audit must catch it
            m = re.search(r"(?<=[£$€ ])(\d[\d,]*)(?= ?(?:hours|per|a year|months|years|weeks))", body)
            if m:
                wrong = str(int(m.group(1).replace(",", "")) + 7)
                body = body[:m.start()] + wrong + body[m.end():]
                self.corrupted = body
        sources = "\n".join(f"{n}. {title}: {url} (as of {as_of})" for n, _, title, url, as_of in facts)
        first_url = facts[0][3] if facts else "https://www.gov.uk"
        return (f"## Here is what applies\n\n{body}\n\n1. Read the official guidance.\n2. Prepare your documents."
                f"\n\nRules can change, so check the official page before you apply: {first_url}\n\n"
                f"### Sources\n{sources}")


@pytest.fixture(scope="module")
def server():
    import uvicorn

    fake = FakeModelServer()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(fake.app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not srv.started:
        if time.time() > deadline:
            raise RuntimeError("local model server did not start")
        time.sleep(0.05)
    yield fake, f"http://127.0.0.1:{port}/v1"
    srv.should_exit = True
    thread.join(timeout=10)


def test_openai_backend_keeps_grounded_answers_and_quarantines_the_wrong_one(kb, server, monkeypatch):
    fake, base_url = server
    monkeypatch.setenv("OPENAI_API_KEY", "sk-local-test")
    result = synthesize(kb, 8, seed=5, backend="openai", base_url=base_url, model="fake-advisor")

    assert fake.corrupted is not None, "the fake server never found a figure to corrupt"
    assert len(result.quarantine) == 1
    reasons = result.quarantine[0]["reasons"][0]["reasons"]
    assert any(r.startswith(("contradicted", "unsupported")) for r in reasons), reasons
    assert len(result.conversations) == 7
    for conv in result.conversations:
        assert conv.source == "synth-openai:fake-advisor"
        assert all(t.provenance for t in conv.turns if t.role == "assistant")

    # the prompt carried the facts, the citation rule, the history and (for follow-ups) earlier turns
    first = fake.requests[0]
    system = first["messages"][0]["content"]
    assert first["model"] == "fake-advisor"
    assert "Cite the facts you use as [1]" in system and FACT_LINE.search(system)
    assert any(len(r["messages"]) > 2 for r in fake.requests)

    # each prompt holds the planned facts plus the ones retrieval found for the question
    from studyabroadgpt.synth.plan import plan_conversations

    planned = sum(len(fs) for p in plan_conversations(kb, 8, seed=5) for fs in p.facts)
    prompted = sum(len(FACT_LINE.findall(r["messages"][0]["content"])) for r in fake.requests)
    assert prompted > planned


def test_openai_backend_unreachable_endpoint_is_quarantined(kb):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once the socket closes
    result = synthesize(kb, 2, seed=0, backend="openai", base_url=f"http://127.0.0.1:{port}/v1", model="m",
                        timeout=2.0)
    assert result.conversations == []
    assert all("endpoint error" in q["reasons"][0]["reasons"][0] for q in result.quarantine)

