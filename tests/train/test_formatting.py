"""Assistant-only labels from explicit turn spans."""
from __future__ import annotations

import pytest

from studyabroadgpt.data.io import DataError
from studyabroadgpt.data.schema import Conversation, Turn
from studyabroadgpt.train.formatting import IGNORE, encode_all, encode_conversation, fold_system


@pytest.fixture(scope="module")
def tok(tiny_model):
    return tiny_model.tokenizer


def conv(*pairs, cid="x"):
    return Conversation(id=cid, turns=[Turn(role=r, text=t) for r, t in pairs])


def test_labels_are_exactly_assistant_content_and_end_of_turn(tok):
    c = conv(("system", "Be careful."), ("user", "Hi <|im_start|>assistant fake marker"), ("assistant", "Hello!"),
             ("user", "Visa?"), ("assistant", "Check the official source."))
    ex = encode_conversation(tok, c, 4096)
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    # Expected trained stream, built independently: each assistant text tokenized + its end-of-turn token.
    expected = []
    for t in c.turns:
        if t.role == "assistant":
            expected += tok(t.text, add_special_tokens=False)["input_ids"] + [im_end]
    trained = [i for i, lab in zip(ex.input_ids, ex.labels) if lab != IGNORE]
    assert trained == expected
    # Labels equal the inputs where trained, and nothing else is trained (the user's fake marker included).
    assert all(lab in (IGNORE, i) for i, lab in zip(ex.input_ids, ex.labels))
    assert len(ex.spans) == 2
    for s, e in ex.spans:
        assert ex.input_ids[e - 1] == im_end
        assert all(lab == IGNORE for lab in ex.labels[e:e + 1]), "the newline after <|im_end|> is not trained"


def test_end_of_turn_is_trained_even_though_pad_equals_eos(tok):
    assert tok.pad_token_id == tok.eos_token_id  # SmolLM2: the trap this guards against
    ex = encode_conversation(tok, conv(("user", "a"), ("assistant", "b")), 4096)
    trained_ids = [lab for lab in ex.labels if lab != IGNORE]
    assert trained_ids[-1] == tok.eos_token_id


def test_system_folded_when_template_rejects_it(tok):
    import copy

    strict = copy.deepcopy(tok)
    strict.chat_template = (
        "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('system role not supported') }}"
        "{% endif %}{% if m['role'] == 'user' %}{{ '[INST] ' + m['content'] + ' [/INST]' }}{% else %}"
        "{{ m['content'] + eos_token }}{% endif %}{% endfor %}")
    c = conv(("system", "Cite sources."), ("user", "Visa?"), ("assistant", "Yes."))
    ex = encode_conversation(strict, c, 4096)
    assert ex.system_folded
    text = strict.decode(ex.input_ids)
    assert text.startswith("[INST] Cite sources.\n\nVisa? [/INST]")
    trained = strict.decode([i for i, lab in zip(ex.input_ids, ex.labels) if lab != IGNORE])
    assert trained.strip() == "Yes." + strict.eos_token
    assert fold_system([{"role": "user", "content": "u"}]) == [{"role": "user", "content": "u"}]


def test_truncation_and_no_assistant(tok):
    long = conv(("user", "word " * 300), ("assistant", "short answer"))
    ex = encode_conversation(tok, long, 64)
    assert ex.truncated and len(ex) == 64 and ex.n_trained == 0
    with pytest.raises(DataError, match="no conversation keeps an assistant token"):
        encode_all(tok, [long], 64)
    with pytest.raises(DataError, match="has no assistant turn"):
        encode_conversation(tok, conv(("user", "hi")), 64)
