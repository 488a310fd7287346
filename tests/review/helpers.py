"""Fake answered turns in the shape the server logs them (sources and gate as the API returns them)."""
from __future__ import annotations

import uuid


def source(i: int, fact_id: str, topic: str = "student_visa", cited: bool = True, score: float = 0.03,
           policy: bool = True) -> dict:
    return {"index": i, "id": fact_id, "title": "GOV.UK", "url": "https://www.gov.uk/student-visa",
            "as_of": "2025-01-01", "review_after": "2026-01-01", "destination": "GB", "country": "United Kingdom",
            "topic": topic, "statement": f"statement of {fact_id}", "policy_sensitive": policy, "score": score,
            "cited": cited}


def log_turn(store, question: str = "How much money do I need for a UK student visa?", *, changed: bool = False,
             mode: str = "generate", sources: list | None = None, conversation: str | None = None,
             history: list | None = None, answer: str = "You need £1,483 per month [1].") -> int:
    sources = [source(1, "gb-funds-london")] if sources is None else sources
    changes = [{"action": "corrected", "claim": "£1,900", "replacement": "GBP 1,483 per month",
                "fact_id": "gb-funds-london", "citation": 1}] if changed else [{"action": "cited"}]
    return store.record_turn(
        request_id="chatcmpl-" + uuid.uuid4().hex[:12], conversation_id=conversation or uuid.uuid4().hex[:8],
        messages=(history or []) + [{"role": "user", "content": question}], answer=answer, raw_text=answer,
        gate={"enabled": True, "changed": changed, "changes": changes, "mode": mode}, sources=sources,
        kb_version="kbv1", model_id="scripted", adapter_id=None, latency_ms=12.5)
