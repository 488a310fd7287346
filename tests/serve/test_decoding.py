"""Decoding against repetition (serve/settings.py): the penalty and the n-gram ban look at the answer's own
tokens only, so the model may still quote the grounding facts from its prompt."""
from __future__ import annotations

import torch

from studyabroadgpt.serve.generation import GenParams
from studyabroadgpt.serve.hf_engine import _answer_only_processors
from studyabroadgpt.serve.settings import DECODING


def test_defaults_come_from_settings():
    p = GenParams()
    assert (p.repetition_penalty, p.no_repeat_ngram_size, p.penalty_scope) == \
        (DECODING["repetition_penalty"], DECODING["no_repeat_ngram_size"], DECODING["penalty_scope"])


def test_ngram_ban_and_penalty_ignore_the_prompt():
    # prompt: a fact's 4 tokens 11 12 13 14; the answer so far quotes 11 12 13 -> 14 must stay allowed
    prompt = [5, 11, 12, 13, 14, 6]
    ids = torch.tensor([prompt + [11, 12, 13]])
    scores = torch.zeros(1, 32)
    scores[0, 14] = 2.0
    procs = _answer_only_processors(GenParams(repetition_penalty=1.5, no_repeat_ngram_size=4), start=len(prompt))
    out = procs(ids, scores.clone())
    assert out[0, 14] == 2.0                       # neither banned nor penalised: only 3 answer tokens so far
    assert out[0, 11] == 0.0 and torch.isfinite(out[0, 11])
    # the answer repeating its OWN 4-gram is banned, and its own tokens are penalised
    ids = torch.tensor([prompt + [20, 21, 22, 23, 20, 21, 22]])
    scores = torch.ones(1, 32)
    out = procs(ids, scores.clone())
    assert out[0, 23] == float("-inf")
    assert out[0, 20] < 1.0 and out[0, 14] == 1.0  # an answer token is penalised, a prompt-only token is not


def test_eval_hf_system_decodes_with_the_server_settings():
    # the eval's local-model systems take the server's DECODING (penalty_scope included) to model.generate
    from studyabroadgpt import models
    from studyabroadgpt.eval.items import EvalItem
    from studyabroadgpt.eval.systems import HFSystem, _with_server_decoding
    from studyabroadgpt.serve.hf_engine import penalty_kwargs

    assert set(penalty_kwargs(1.15, 4, "generated", 10)) == {"logits_processor"}
    assert penalty_kwargs(1.15, 4, "all", 10) == {"repetition_penalty": 1.15, "no_repeat_ngram_size": 4}
    loaded = models.load("tiny-random")
    system = _with_server_decoding(HFSystem("tiny", loaded.model, loaded.tokenizer, max_new_tokens=6))
    assert system.decoding == DECODING
    items = [EvalItem("a", [{"role": "user", "content": "How many hours can I work on a UK Student visa?"}]),
             EvalItem("b", [{"role": "user", "content": "visa?"}])]
    answers = system.answer(items)
    assert [a.id for a in answers] == ["a", "b"] and all(isinstance(a.response, str) for a in answers)
