"""Generation: one load serves base and tuned, batching is faithful, endpoints and callables join the same way."""
from __future__ import annotations

import pytest

from studyabroadgpt.eval.generate import generate
from studyabroadgpt.eval.items import EvalItem
from studyabroadgpt.eval.outputs import read_outputs
from studyabroadgpt.eval.systems import CallableSystem, EndpointSystem, HFSystem, load_pair

PROMPTS = ["How much money do I need for a UK student visa?", "Can I work in Canada while studying?",
           "Which English test does Germany accept?", "Hi"]


@pytest.fixture(scope="module")
def items():
    return [EvalItem(id=str(i), messages=[{"role": "user", "content": p}], reference=f"ref {i}")
            for i, p in enumerate(PROMPTS)]


@pytest.fixture(scope="module")
def pair(tiny_adapter):
    return load_pair("tiny-random", str(tiny_adapter))


def test_base_is_the_model_without_adapter_and_tuned_differs(pair, items, tiny_model):
    model, tok = pair
    base = HFSystem("base", model, tok, adapter=False, max_new_tokens=12, batch_size=4).answer(items)
    tuned = HFSystem("tuned", model, tok, adapter=True, max_new_tokens=12, batch_size=4).answer(items)
    plain_model, plain_tok = tiny_model
    plain = HFSystem("plain", plain_model, plain_tok, max_new_tokens=12, batch_size=4).answer(items)
    assert [a.response for a in base] == [a.response for a in plain]
    assert [a.response for a in tuned] != [a.response for a in base]
    for a in base + tuned:
        assert 1 <= a.new_tokens <= 12 and (not a.truncated or a.new_tokens == 12)
        assert a.latency_s > 0 and a.reference is not None


def test_left_padded_batches_match_single_generation(pair, items):
    model, tok = pair
    single = HFSystem("tuned", model, tok, max_new_tokens=10, batch_size=1).answer(items)
    batched = HFSystem("tuned", model, tok, max_new_tokens=10, batch_size=4).answer(items)
    assert [a.id for a in batched] == [a.id for a in items]  # item order restored after length sorting
    assert [a.response for a in batched] == [a.response for a in single]
    assert [a.new_tokens for a in batched] == [a.new_tokens for a in single]


def test_generate_writes_outputs_and_throughput(pair, items, tmp_path, judge_url):
    model, tok = pair
    systems = [HFSystem("base", model, tok, adapter=False, max_new_tokens=8, batch_size=2),
               HFSystem("tuned", model, tok, adapter=True, max_new_tokens=8, batch_size=2),
               EndpointSystem("grounded", judge_url, max_new_tokens=64),
               CallableSystem("echo", lambda messages: (messages[-1]["content"].upper(), 3))]
    answers, gen = generate(systems, items, tmp_path / "outputs.jsonl", show_progress=False)
    assert len(answers) == 16
    back = read_outputs([tmp_path / "outputs.jsonl"], allow_empty=True)  # a random model may say nothing
    assert list(back) == ["base", "tuned", "grounded", "echo"]
    assert back["grounded"][0].response.startswith("About 'How much money") and back["grounded"][0].new_tokens > 5
    assert back["echo"][3].response == "HI" and back["echo"][3].new_tokens == 3
    for name in ("base", "tuned"):
        g = gen[name]
        assert g["samples_per_s"] > 0 and g["tokens_per_s"] > 0 and 0 <= g["truncation_rate"] <= 1
    assert (tmp_path / "generation.json").exists()


def test_endpoint_reports_truncation(items, judge_url):
    got = EndpointSystem("grounded", judge_url, max_new_tokens=4).answer(items[:1])
    assert got[0].truncated is True and got[0].new_tokens == 4


def test_duplicate_system_names_rejected(items):
    with pytest.raises(ValueError, match="unique"):
        generate([CallableSystem("x", str), CallableSystem("x", str)], items, show_progress=False)


def test_new_tokens_and_truncation_are_counted_up_to_eos():
    from studyabroadgpt.eval.systems import _count_until_eos

    assert _count_until_eos([5, 6, 2, 2, 2], [2]) == (3, True)   # EOS counted, padding after it is not
    assert _count_until_eos([5, 6, 7], [2]) == (3, False)        # never stopped: truncated
    assert _count_until_eos([9, 5], [2, 9]) == (1, True)         # any of several EOS ids


def test_finished_systems_are_readable_while_the_last_one_runs(items, tmp_path):
    out = tmp_path / "outputs.jsonl"
    seen = {}

    def last(messages):
        if not seen:  # while the last system runs, the first one's answers are on disk already
            seen.update(read_outputs([tmp_path / "outputs.partial.jsonl"]))
        return "second"

    generate([CallableSystem("first", lambda m: "first"), CallableSystem("last", last)], items, out,
             show_progress=False)
    assert list(seen) == ["first"] and [a.response for a in seen["first"]] == ["first"] * len(items)
    assert list(read_outputs([out])) == ["first", "last"]
    assert not (tmp_path / "outputs.partial.jsonl").exists()


@pytest.mark.parametrize("scope", ["all", "generated"])
def test_server_decoding_reaches_generate_in_either_penalty_scope(pair, items, scope, monkeypatch):
    """Grounded HF systems decode with the server's DECODING; its penalty_scope is not a generate() argument."""
    from studyabroadgpt.eval.systems import _with_server_decoding
    from studyabroadgpt.serve import settings

    monkeypatch.setitem(settings.DECODING, "penalty_scope", scope)
    model, tok = pair
    served = _with_server_decoding(HFSystem("tuned", model, tok, adapter=True, max_new_tokens=12, batch_size=2))
    assert served.decoding["penalty_scope"] == scope
    answers = served.answer(items[:2])
    assert len(answers) == 2 and all(a.new_tokens > 0 for a in answers)
