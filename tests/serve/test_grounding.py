"""Grounding and the factuality gate through the real HTTP server, with a scripted generator standing in for
the model (injected through ``create_app(generator=...)``), so the answer — and its planted errors — are known."""
from __future__ import annotations

import pytest

from studyabroadgpt.serve.app import create_app
from studyabroadgpt.serve.generation import ScriptedGenerator
from studyabroadgpt.serve.settings import ServeSettings

# Checks what is done to generated text: auto would answer these rule questions from the facts.
pytestmark = pytest.mark.usefixtures("generated_rule_answers")

FUNDS_Q = [{"role": "user", "content": "How much money do I need to show for a UK student visa if I study in London?"}]
RIGHT = "For a course in London you must show £1,483 per month for up to 9 months."
WRONG = "For a course in London you must show £1,900 per month for up to 9 months."
INVENTED = "You should also apply for the Royal Commonwealth Golden Scholarship, which covers all fees."


@pytest.fixture()
def grounded(serve, answerer):
    """``grounded(reply)`` → (base_url, generator) of a server whose model always answers ``reply``."""
    servers = []

    def make(reply: str, **settings):
        gen = ScriptedGenerator(reply)
        ctx = serve(create_app(gen, answerer, ServeSettings(**settings)))
        servers.append(ctx)
        return ctx.__enter__(), gen

    yield make
    for ctx in servers:
        ctx.__exit__(None, None, None)


def test_answer_needing_a_kb_fact_gets_it_with_a_citation(grounded, client_for):
    base, gen = grounded(RIGHT)
    resp = client_for(base).chat.completions.create(model="m", messages=FUNDS_Q)
    content = resp.choices[0].message.content
    sources = resp.model_extra["sources"]
    funds = next(s for s in sources if s["id"] == "gb.funds.monthly")
    # The model saw the fact, numbered as it is cited.
    prompt = gen.calls[0][0]["content"]
    assert f"[{funds['index']}]" in prompt and "£1,483 per month" in prompt
    # The answer keeps the right figure, cites it and lists the source with its official URL and date.
    assert "£1,483 per month" in content and f"[{funds['index']}]" in content
    assert funds["cited"] is True and funds["url"].startswith("https://www.gov.uk/")
    assert "**Sources**" in content and funds["url"] in content
    gate = resp.model_extra["gate"]
    assert gate["enabled"] is True
    assert not any(c["action"] in ("corrected", "removed", "marked_unverified") for c in gate["changes"])


def test_planted_wrong_number_is_corrected_with_citation(grounded, client_for):
    base, _ = grounded(WRONG)
    resp = client_for(base).chat.completions.create(model="m", messages=FUNDS_Q)
    content = resp.choices[0].message.content
    gate = resp.model_extra["gate"]
    fixed = next(c for c in gate["changes"] if c["action"] == "corrected")
    assert fixed["claim"] == "£1,900 per month" and fixed["fact_id"] == "gb.funds.monthly"
    assert "1,483" in fixed["replacement"]
    assert "1,900" not in content.split("> **Fact check:**")[0]  # the wrong figure is gone from the answer
    assert f"{fixed['replacement']} [{fixed['citation']}]" in content
    assert gate["changed"] is True and "corrected" in gate["note"]


def test_gate_in_stream_sends_corrections_in_the_last_chunk(grounded, client_for):
    base, _ = grounded(WRONG + " " + INVENTED)
    # generate mode: in auto a corrected and marked answer is replaced by the composed one (FALL_BACK_ON_ONE_DOUBT)
    chunks = list(client_for(base).chat.completions.create(model="m", messages=FUNDS_Q, stream=True,
                                                           extra_body={"answer_mode": "generate"}))
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks)
    last = chunks[-1].model_extra
    assert last["gate"]["changed"] is True and last["sources"]
    # A plain client that just concatenates deltas sees the raw text, then the fact-check note and sources.
    assert streamed.startswith(WRONG) and "“£1,900 per month” corrected to the official GBP 1,483 per month" in streamed \
        and "**Sources**" in streamed
    # Our page swaps in the corrected answer carried by the gate field.
    corrected = last["gate"]["content"]
    assert "1,900" not in corrected.split("> **Fact check:**")[0]
    # The invented scholarship's sentence (a mark, no cited fact) is not in the answer the page swaps in; the
    # streamed text already carried it, so the last chunk's note says it was removed and why.
    assert "Royal Commonwealth" not in corrected.split("> **Fact check:**")[0]
    assert streamed.count("Royal Commonwealth") == 2
    assert "removed “You should also apply for the Royal Commonwealth" in streamed.split(WRONG, 1)[1]
    gone = next(c for c in last["gate"]["changes"] if c["action"] == "removed_unverified")
    assert gone["sentence"] == INVENTED.replace("Scholarship,", "Scholarship (unverified),")


def test_policy_sensitive_answer_ends_with_dated_official_caveat(grounded, client_for):
    base, _ = grounded(RIGHT)
    resp = client_for(base).chat.completions.create(model="m", messages=FUNDS_Q)
    caveat = next(c for c in resp.model_extra["gate"]["changes"] if c["action"] == "added_caveat")
    content = resp.choices[0].message.content
    body = content.split("**Sources**")[0].rstrip()
    assert body.endswith("._")  # the caveat is the last paragraph before the sources
    assert caveat["url"] in body.splitlines()[-1] and caveat["as_of"] in body.splitlines()[-1]


def test_no_rag_per_request_and_per_server(grounded, client_for):
    base, gen = grounded(WRONG)
    resp = client_for(base).chat.completions.create(model="m", messages=FUNDS_Q, extra_body={"rag": False})
    assert resp.choices[0].message.content == WRONG and resp.model_extra["sources"] == []
    assert gen.calls[-1] == FUNDS_Q  # the model saw the bare conversation
    base, gen = grounded(WRONG, rag=False, gate=False)
    resp = client_for(base).chat.completions.create(model="m", messages=FUNDS_Q)
    assert resp.choices[0].message.content == WRONG and resp.model_extra["gate"]["enabled"] is False


def test_uncited_answer_gets_the_top_fact(grounded, client_for):
    base, _ = grounded("It depends on where you study; plan your budget carefully.")
    resp = client_for(base).chat.completions.create(model="m", messages=FUNDS_Q)
    content = resp.choices[0].message.content
    top = resp.model_extra["sources"][0]
    assert f"{top['statement']} [{top['index']}]" in content and top["cited"] is True


def test_model_invented_citation_numbers_are_dropped(grounded, client_for):
    base, _ = grounded("You need £1,483 per month in London [7].")
    resp = client_for(base).chat.completions.create(model="m", messages=FUNDS_Q)
    assert "[7]" not in resp.choices[0].message.content
    assert any(c["action"] == "dropped_citation" and c["citation"] == 7 for c in resp.model_extra["gate"]["changes"])


@pytest.mark.integration
def test_real_model_grounded_answer(smollm2, serve, answerer, client_for):
    """The real SmolLM2-135M behind the server: whatever it writes, the answer arrives cited and sourced."""
    from studyabroadgpt.serve.hf_engine import HFGenerator

    model, tok = smollm2
    gen = HFGenerator(model, tok, model_name="smollm2")
    with serve(create_app(gen, answerer, ServeSettings())) as base:
        resp = client_for(base).chat.completions.create(model="smollm2", messages=FUNDS_Q, max_tokens=48)
    content = resp.choices[0].message.content
    sources = resp.model_extra["sources"]
    assert resp.usage.completion_tokens > 0 and sources[0]["id"].startswith("gb.funds")
    cited = [s for s in sources if s["cited"]]
    assert cited and all(f"[{s['index']}]" in content for s in cited) and "**Sources**" in content


def test_small_talk_gets_no_invented_grounding(grounded, client_for):
    base, _ = grounded("Hello! How can I help you today?")
    resp = client_for(base).chat.completions.create(model="m", messages=[{"role": "user", "content": "hi there"}])
    assert resp.choices[0].message.content == "Hello! How can I help you today?"
    assert not any(s["cited"] for s in resp.model_extra["sources"]) and resp.model_extra["gate"]["changed"] is False
