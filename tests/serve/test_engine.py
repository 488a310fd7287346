"""The transformers engine: adapters through peft, per-row stopping inside a batch, streaming decode."""
from __future__ import annotations

import asyncio

import pytest

from studyabroadgpt.models import ModelLoadError
from studyabroadgpt.serve.generation import GenParams, Piece
from studyabroadgpt.serve.hf_engine import HFGenerator, load_hf_generator


@pytest.fixture(scope="module")
def adapter_dir(tmp_path_factory, tiny_model):
    """A LoRA adapter on the tiny model with non-zero B, so merging it changes the outputs."""
    import torch
    from peft import LoraConfig, get_peft_model

    from studyabroadgpt import models

    base, _ = models.load(models.TINY_MODEL)
    peft_model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    out = tmp_path_factory.mktemp("adapter")
    peft_model.save_pretrained(out)
    return out


MSGS = [{"role": "user", "content": "Can I work while studying in Canada?"}]


async def complete(gen, messages, params) -> Piece:
    """The whole answer of one request: text joined, with the last piece's finish reason and counts."""
    parts, last = [], Piece(finish_reason="stop")
    async for piece in gen.stream(messages, params):
        parts.append(piece.text)
        if piece.finish_reason is not None:
            last = piece
    return Piece("".join(parts), last.finish_reason, last.prompt_tokens, last.completion_tokens)


async def _run(gen: HFGenerator, requests: list[tuple[list, GenParams]]):
    await gen.start()
    try:
        return await asyncio.gather(*(complete(gen, m, p) for m, p in requests))
    finally:
        await gen.close()


def test_adapter_is_loaded_and_merged(adapter_dir):
    merged = load_hf_generator("tiny-random", adapter=str(adapter_dir))
    attached = load_hf_generator("tiny-random", adapter=str(adapter_dir), merge_adapter=False)
    plain = load_hf_generator("tiny-random")
    assert merged.model_name.endswith("+" + adapter_dir.name)
    assert type(merged.model).__name__ == "LlamaForCausalLM"          # merged back into the base class
    assert type(attached.model).__name__.startswith("PeftModel")
    params = GenParams(max_tokens=12)
    [a] = asyncio.run(_run(merged, [(MSGS, params)]))
    [b] = asyncio.run(_run(attached, [(MSGS, params)]))
    [c] = asyncio.run(_run(plain, [(MSGS, params)]))
    assert a.text == b.text  # merging is exact (greedy decoding)
    assert a.text != c.text  # and the adapter really changes the model
    with pytest.raises(ModelLoadError, match="adapter_config.json"):
        load_hf_generator("tiny-random", adapter=str(adapter_dir.parent))


def test_rows_of_one_batch_stop_independently(tiny_model):
    model, tok = tiny_model
    gen = HFGenerator(model, tok, "tiny", max_batch=3, collect_ms=200)
    reqs = [([{"role": "user", "content": "short question"}], GenParams(max_tokens=3)),
            ([{"role": "user", "content": "a much longer question about funds " * 5}], GenParams(max_tokens=9)),
            ([{"role": "user", "content": "third"}], GenParams(max_tokens=6))]
    outs = asyncio.run(_run(gen, reqs))
    assert gen.batches == [3]  # one generate() call for all three
    assert [o.completion_tokens for o in outs] == [3, 9, 6]
    assert all(o.finish_reason == "length" for o in outs)
    # Batched (left-padded) greedy output equals each request run alone.
    alone = HFGenerator(model, tok, "tiny", max_batch=1, collect_ms=0)
    singles = [asyncio.run(_run(alone, [r]))[0] for r in reqs]
    assert [o.text for o in outs] == [s.text for s in singles]
