"""Systems under evaluation: anything that turns chat messages into an answer.

* :class:`HFSystem` – a local transformers model; the base and the fine-tuned system share ONE loaded
  ``PeftModel`` and the base answers are produced inside ``model.disable_adapter()``, so the two differ only
  by the adapter (same weights in memory, same tokenizer, same greedy decoding, same batches).
* :class:`EndpointSystem` – any OpenAI-compatible chat endpoint (vLLM, llama.cpp server, our grounded
  ``serve`` app, a hosted API) through the ``openai`` client.
* :class:`CallableSystem` – a Python function ``messages -> str`` (for notebooks and custom pipelines).
* :class:`GroundedSystem` – any of these behind the server's own answer path (retrieval, the numbered-facts
  prompt, the factuality gate, citations and sources): what `sagpt serve` answers with that model.

Each system answers a list of items and returns :class:`Answer` rows plus throughput figures.
"""
from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Protocol, Sequence

from .items import EvalItem
from .outputs import Answer

Progress = Callable[[int], None]  # advance a progress bar by n answers


@dataclass
class GenStats:
    n: int
    wall_s: float
    new_tokens: int
    truncated: int

    def to_dict(self) -> dict[str, float]:
        return {"samples_per_s": self.n / self.wall_s if self.wall_s > 0 else float("nan"),
                "tokens_per_s": self.new_tokens / self.wall_s if self.wall_s > 0 else float("nan"),
                "truncation_rate": self.truncated / self.n if self.n else float("nan"),
                "n": self.n, "wall_s": self.wall_s}


class System(Protocol):
    name: str

    def answer(self, items: Sequence[EvalItem], progress: Progress | None = None) -> list[Answer]: ...


def stats_of(answers: Sequence[Answer], wall_s: float) -> GenStats:
    return GenStats(n=len(answers), wall_s=wall_s, new_tokens=sum(a.new_tokens or 0 for a in answers),
                    truncated=sum(bool(a.truncated) for a in answers))


def _answer_row(item: EvalItem, system: str, text: str, latency: float, new_tokens: int | None,
                truncated: bool | None) -> Answer:
    return Answer(id=item.id, prompt=item.prompt, response=text, system=system, reference=item.reference,
                  latency_s=round(latency, 4), new_tokens=new_tokens, truncated=truncated,
                  category=item.category, checks=item.checks)


# --------------------------------------------------------------------------------------------- local HF


class HFSystem:
    """Greedy, batched, left-padded generation with a transformers model.

    ``adapter=False`` on a ``PeftModel`` answers with the adapter disabled (the base model). Latency is the
    wall time of the batch an answer was generated in: what a user in that batch waited.
    """

    def __init__(self, name: str, model: Any, tokenizer: Any, adapter: bool = True, max_new_tokens: int = 256,
                 batch_size: int = 4, decoding: dict[str, Any] | None = None):
        self.name, self.model, self.tokenizer = name, model, tokenizer
        self.adapter, self.max_new_tokens, self.batch_size = adapter, max_new_tokens, batch_size
        self.decoding = dict(decoding or {})  # extra generate() kwargs, e.g. repetition_penalty

    def _context(self):
        if not self.adapter and hasattr(self.model, "disable_adapter"):
            return self.model.disable_adapter()
        return contextlib.nullcontext()

    def answer(self, items: Sequence[EvalItem], progress: Progress | None = None) -> list[Answer]:
        import torch

        tok = self.tokenizer
        tok.padding_side = "left"  # decoder-only batching: the new tokens must follow each prompt directly
        texts = [tok.apply_chat_template(it.messages, add_generation_prompt=True, tokenize=False) for it in items]
        # Batch prompts of similar length together (less padding); answers are put back in item order.
        order = sorted(range(len(items)), key=lambda i: len(texts[i]))
        eos = self._eos_ids()
        out: dict[int, Answer] = {}
        self.model.eval()
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            enc = tok([texts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False)
            t0 = time.perf_counter()
            decoding = dict(self.decoding)
            if "penalty_scope" in decoding:  # the server's decoding (serve/settings.py): penalties on the answer only
                from ..serve.hf_engine import penalty_kwargs

                decoding = penalty_kwargs(decoding.pop("repetition_penalty", 1.0),
                                          decoding.pop("no_repeat_ngram_size", 0), decoding.pop("penalty_scope"),
                                          enc["input_ids"].shape[1]) | decoding
            with torch.inference_mode(), self._context():
                gen = self.model.generate(**enc, max_new_tokens=self.max_new_tokens, do_sample=False,
                                          pad_token_id=tok.pad_token_id, eos_token_id=eos, **decoding)
            latency = time.perf_counter() - t0
            new = gen[:, enc["input_ids"].shape[1]:]
            for row, i in zip(new.tolist(), idx):
                n_new, finished = _count_until_eos(row, eos)
                text = tok.decode(row[:n_new], skip_special_tokens=True).strip()
                out[i] = _answer_row(items[i], self.name, text, latency, n_new, truncated=not finished)
            if progress:
                progress(len(idx))
        return [out[i] for i in range(len(items))]

    def _eos_ids(self) -> list[int]:
        ids = self.model.generation_config.eos_token_id
        ids = list(ids) if isinstance(ids, (list, tuple)) else ([ids] if ids is not None else [])
        if self.tokenizer.eos_token_id is not None and self.tokenizer.eos_token_id not in ids:
            ids.append(self.tokenizer.eos_token_id)
        return ids


def _count_until_eos(row: list[int], eos: list[int]) -> tuple[int, bool]:
    """New tokens up to and including the first EOS, and whether an EOS was produced at all."""
    for k, t in enumerate(row):
        if t in eos:
            return k + 1, True
    return len(row), False


def load_pair(base: str, adapter: str | None, dtype: str = "float32", quantization: str | None = None):
    """One model load serving both systems: the base weights with the adapter attached (if any)."""
    from .. import models

    # Check the adapter before the (slow) base load so a wrong path fails in a second, not after the load.
    if adapter and not os.path.exists(os.path.join(adapter, "adapter_config.json")):
        raise models.ModelLoadError(f"{adapter}: not a PEFT adapter directory (no adapter_config.json); train one "
                                    "with `sagpt train` or set model.adapter")
    loaded = models.load(base, quantization=quantization, dtype=dtype)
    model = loaded.model
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter, is_trainable=False)
    return model, loaded.tokenizer


# --------------------------------------------------------------------------------------------- endpoint


class EndpointSystem:
    """An OpenAI-compatible chat endpoint, called with temperature 0 and the same ``max_tokens``."""

    def __init__(self, name: str, base_url: str, model: str = "default", api_key: str | None = None,
                 max_new_tokens: int = 256, timeout_s: float = 120.0, client: Any = None,
                 answer_mode: str | None = None):
        from openai import OpenAI

        self.name, self.model, self.max_new_tokens = name, model, max_new_tokens
        # Our server's answer mode (generate | compose | auto), sent as a request extension; other servers
        # ignore unknown fields.
        self.extra_body = {"answer_mode": answer_mode} if answer_mode else None
        self.client = client or OpenAI(base_url=base_url, api_key=api_key or os.environ.get("OPENAI_API_KEY")
                                       or "EMPTY", timeout=timeout_s, max_retries=2)

    def answer(self, items: Sequence[EvalItem], progress: Progress | None = None) -> list[Answer]:
        out = []
        for it in items:
            t0 = time.perf_counter()
            resp = self.client.chat.completions.create(model=self.model, messages=it.messages, temperature=0.0,
                                                       max_tokens=self.max_new_tokens, extra_body=self.extra_body)
            latency = time.perf_counter() - t0
            choice = resp.choices[0]
            usage = getattr(resp, "usage", None)
            out.append(_answer_row(it, self.name, (choice.message.content or "").strip(), latency,
                                   getattr(usage, "completion_tokens", None),
                                   truncated=choice.finish_reason == "length"))
            if progress:
                progress(1)
        return out


# --------------------------------------------------------------------------------------------- callable


class CallableSystem:
    """Wrap ``fn(messages) -> str``; new tokens are unknown (None) unless ``fn`` returns (text, n_tokens)."""

    def __init__(self, name: str, fn: Callable[[list[dict[str, str]]], Any]):
        self.name, self.fn = name, fn

    def answer(self, items: Sequence[EvalItem], progress: Progress | None = None) -> list[Answer]:
        out = []
        for it in items:
            t0 = time.perf_counter()
            result = self.fn(it.messages)
            latency = time.perf_counter() - t0
            text, n = result if isinstance(result, tuple) else (result, None)
            out.append(_answer_row(it, self.name, str(text).strip(), latency, n, truncated=None))
            if progress:
                progress(1)
        return out


# --------------------------------------------------------------------------------------------- grounded


class GroundedSystem:
    """The served assistant as an eval system: retrieval + a model system + the factuality gate.

    It wraps an already built system (for the HF systems: the one loaded model, no second load) with the
    server's own ``Answerer``, so what is evaluated is what `sagpt serve` answers: the same answer mode (the
    composed fallback, the honest out-of-scope answer), the same gate, and — for a local model — the server's
    anti-repetition decoding (``serve/settings.py``). The model is only asked where the server would ask it.
    Each answer records the KB fact ids it cites (``sources``, read by the off-topic-citation metric) and the
    mode that produced it (``mode``: generate / compose / out_of_scope).
    """

    def __init__(self, name: str, generator: Any, answerer: Any = None, mode: str | None = None):
        if answerer is None:
            from ..serve.answer import Answerer

            answerer = Answerer.from_kb()
        self.name, self.answerer, self.mode = name, answerer, mode
        self.generator = _with_server_decoding(generator)

    def answer(self, items: Sequence[EvalItem], progress: Progress | None = None) -> list[Answer]:
        from dataclasses import replace

        turns = [self.answerer.prepare(it.messages, mode=self.mode) for it in items]
        asked = [i for i, t in enumerate(turns) if getattr(t, "generates", True)]
        grounded = [replace(items[i], messages=turns[i].model_messages) for i in asked]
        raw = dict(zip(asked, self.generator.answer(grounded, progress) if grounded else []))
        out = []
        for i, (it, turn) in enumerate(zip(items, turns)):
            final = self.answerer.finish(turn, raw[i].response if i in raw else "")
            cited = [s["id"] for s in final.sources if s.get("cited")]
            base = raw.get(i) or _answer_row(it, self.name, "", 0.0, 0, truncated=False)
            if i not in raw and progress:
                progress(1)
            out.append(replace(base, system=self.name, prompt=it.prompt, response=final.content, sources=cited,
                               mode=getattr(final, "mode", None), raw_response=raw[i].response if i in raw else None))
        return out


def _with_server_decoding(generator: Any) -> Any:
    """A local HF system decodes like the server does (repetition penalty, no repeated n-grams); other
    systems (endpoints, callables) decode as they are."""
    if not isinstance(generator, HFSystem):
        return generator
    import copy

    from ..serve.settings import DECODING

    served = copy.copy(generator)
    served.decoding = dict(DECODING)
    return served
