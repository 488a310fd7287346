"""Local generation with transformers: one worker thread owns the model and batches concurrent requests.

Why a single worker: two ``generate`` calls running at once on the same model just fight for the same cores
(or GPU) and each gets slower; one batched call with left padding gives several times the tokens/s
(environment notes: 23 → 121 tokens/s at batch 8 on CPU). So requests wait in a queue for at most one
generation step's worth of time, are grouped with compatible requests (same sampling settings), and run as one
``model.generate`` call. Each row stops on its own (EOS, its own ``max_tokens``, its deadline, or a client that
went away) through a per-row stopping criterion.

Streaming: transformers' ``TextIteratorStreamer`` only handles batch size 1, so ``_BatchStreamer`` (a
``BaseStreamer``) decodes each row incrementally and pushes text deltas onto each request's asyncio queue.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

from .generation import GenerationError, GenParams, Piece, PromptTooLong

log = logging.getLogger("studyabroadgpt.serve")


@dataclass
class _Job:
    prompt_ids: list[int]
    params: GenParams
    loop: asyncio.AbstractEventLoop
    out: asyncio.Queue
    deadline: float | None
    tokens: list[int] = field(default_factory=list)
    emitted: str = ""
    finish_reason: str | None = None
    cancelled: bool = False

    def key(self) -> tuple:
        # Only requests with the same sampling settings can share one generate() call.
        return (self.params.temperature > 0, self.params.temperature, self.params.top_p, self.params.seed,
                self.params.repetition_penalty, self.params.no_repeat_ngram_size, self.params.penalty_scope)

    def push(self, piece: Piece) -> None:
        self.loop.call_soon_threadsafe(self.out.put_nowait, piece)


class _BatchStreamer:
    """Receives each step's new tokens (one per row) from ``generate`` and streams decoded text per row."""

    def __init__(self, jobs: list[_Job], tokenizer: Any, eos_ids: set[int]):
        self.jobs, self.tok, self.eos_ids = jobs, tokenizer, eos_ids
        self.prompt_seen = False

    def put(self, value: Any) -> None:
        if not self.prompt_seen:  # generate() first pushes the prompt ids
            self.prompt_seen = True
            return
        now = time.monotonic()
        for job, token in zip(self.jobs, value.view(-1).tolist()):
            if job.finish_reason is not None:
                continue
            if token in self.eos_ids:
                job.finish_reason = "stop"
                continue
            job.tokens.append(token)
            text = self.tok.decode(job.tokens, skip_special_tokens=True)
            # Hold back a trailing partial UTF-8 character until its next byte arrives.
            if not text.endswith("\ufffd") and len(text) > len(job.emitted):
                job.push(Piece(text[len(job.emitted):]))
                job.emitted = text
            if len(job.tokens) >= job.params.max_tokens:
                job.finish_reason = "length"
            elif job.cancelled:
                job.finish_reason = "cancelled"
            elif job.deadline is not None and now > job.deadline:
                job.finish_reason = "timeout"

    def end(self) -> None:
        return None


class _RowsDone:
    """Per-row stopping criterion: a row stops when the streamer has given it a finish reason."""

    def __init__(self, jobs: list[_Job]):
        self.jobs = jobs

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        return torch.tensor([j.finish_reason is not None for j in self.jobs], device=input_ids.device)


class HFGenerator:
    """Generator over a loaded transformers model (optionally with a PEFT adapter), batching up to
    ``max_batch`` concurrent requests per ``generate`` call."""

    def __init__(self, model: Any, tokenizer: Any, model_name: str, max_batch: int = 8,
                 collect_ms: float = 10.0):
        self.model, self.tok, self.model_name = model, tokenizer, model_name
        self.max_batch, self.collect_s = max_batch, collect_ms / 1000
        self.context = int(getattr(model.config, "max_position_embeddings", 0) or 4096)
        self._pending: deque[_Job] = deque()
        self._cv = threading.Condition()
        self._stop = False
        self._users = 0
        self._thread: threading.Thread | None = None
        self.batches: list[int] = []  # batch sizes run so far (for the benchmark and tests)
        self._running: list[_Job] = []  # the batch inside generate() now
        eos = model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos]) if eos is not None else set()
        if tokenizer.eos_token_id is not None:
            eos_ids.add(tokenizer.eos_token_id)
        self.eos_ids = eos_ids

    # -- lifecycle -------------------------------------------------------------------------------------
    async def start(self) -> None:
        # Reference-counted: several apps (tests, the benchmark's configurations) may share one loaded model.
        self._users += 1
        if self._thread is None or not self._thread.is_alive():
            self._stop = False
            self._thread = threading.Thread(target=self._worker, name="sagpt-generate", daemon=True)
            self._thread.start()

    async def close(self) -> None:
        self._users = max(0, self._users - 1)
        if self._users:
            return
        with self._cv:
            self._stop = True
            self._cv.notify_all()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 30)
            self._thread = None

    @property
    def in_flight(self) -> int:
        """Requests the model is still working on (queued, or rows of the running ``generate`` call): 0 once a
        client that left, a deadline or a loop stop has really freed the model, not just our side of it."""
        with self._cv:
            return len(self._pending) + len(self._running)

    # -- request side ----------------------------------------------------------------------------------
    def encode(self, messages: list[dict[str, str]]) -> list[int]:
        text = self.tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return self.tok(text, add_special_tokens=False)["input_ids"]

    async def stream(self, messages: list[dict[str, str]], params: GenParams) -> AsyncIterator[Piece]:
        ids = self.encode(messages)
        if len(ids) + params.max_tokens > self.context:
            raise PromptTooLong(f"the prompt has {len(ids)} tokens; with max_tokens={params.max_tokens} it exceeds "
                                f"the model's context of {self.context} tokens")
        deadline = time.monotonic() + params.timeout_s if params.timeout_s else None
        job = _Job(ids, params, asyncio.get_running_loop(), asyncio.Queue(), deadline)
        with self._cv:
            self._pending.append(job)
            self._cv.notify()
        try:
            while True:
                piece = await job.out.get()
                if piece.finish_reason == "error":
                    raise GenerationError("generation failed on the server (see the server log)")
                yield piece
                if piece.finish_reason is not None:
                    return
        finally:
            job.cancelled = True  # the consumer left (client disconnect, timeout): free the row

    # -- worker side -----------------------------------------------------------------------------------
    def _take_batch(self) -> list[_Job]:
        with self._cv:
            while not self._pending and not self._stop:
                self._cv.wait()
            if self._stop:
                return []
        # Give requests that arrive together a moment to join the same batch.
        time.sleep(self.collect_s)
        with self._cv:
            first = self._pending.popleft()
            batch, rest = [first], deque()
            while self._pending and len(batch) < self.max_batch:
                job = self._pending.popleft()
                (batch if job.key() == first.key() else rest).append(job)
            self._pending.extendleft(reversed(rest))
            # Counted as running from here (under the same lock), so in_flight never reads 0 in between.
            self._running = [j for j in batch if not j.cancelled]
        return self._running

    def _worker(self) -> None:
        while True:
            batch = self._take_batch()
            if not batch:
                if self._stop:
                    return
                continue
            try:
                self._run(batch)
            except Exception as exc:  # a failed batch must not kill the worker: fail its requests instead
                log.exception("generation failed", extra={"event": "generate_error"})
                for job in batch:
                    job.push(Piece("", "error"))
                    job.finish_reason = f"error: {type(exc).__name__}"
                with self._cv:
                    self._running = []

    def _run(self, batch: list[_Job]) -> None:
        import torch

        self.batches.append(len(batch))
        pad = self.tok.pad_token_id if self.tok.pad_token_id is not None else self.tok.eos_token_id
        width = max(len(j.prompt_ids) for j in batch)
        # Left padding: every row's next token is then generated at the same position.
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, job in enumerate(batch):
            n = len(job.prompt_ids)
            ids[row, width - n:] = torch.tensor(job.prompt_ids)
            mask[row, width - n:] = 1
        device = next(self.model.parameters()).device
        params = batch[0].params
        sampling: dict[str, Any] = {"do_sample": False}
        sampling.update(penalty_kwargs(params.repetition_penalty, params.no_repeat_ngram_size,
                                       params.penalty_scope, width))
        if params.temperature > 0:
            sampling.update({"do_sample": True, "temperature": params.temperature, "top_p": params.top_p})
            if params.seed is not None:
                torch.manual_seed(params.seed)
        from transformers import StoppingCriteriaList

        with torch.inference_mode():
            self.model.generate(
                input_ids=ids.to(device), attention_mask=mask.to(device),
                max_new_tokens=max(j.params.max_tokens for j in batch),
                streamer=_BatchStreamer(batch, self.tok, self.eos_ids),
                stopping_criteria=StoppingCriteriaList([_RowsDone(batch)]),
                pad_token_id=pad, **sampling,
            )
        with self._cv:
            self._running = []
        for job in batch:
            job.push(Piece("", job.finish_reason or "length", prompt_tokens=len(job.prompt_ids),
                           completion_tokens=len(job.tokens)))


class _AnswerOnlyNGramBan:
    """transformers' no-repeat n-gram ban over the tokens generated after ``start`` (the padded prompt width):
    with the prompt included, no 4-gram of a grounding fact could be written again, so the model could not
    quote "£1,171 per month" and wandered into letter chains instead."""

    def __init__(self, size: int, start: int):
        from transformers.generation.logits_process import NoRepeatNGramLogitsProcessor

        self.ban, self.start = NoRepeatNGramLogitsProcessor(size), start

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        return self.ban(input_ids[:, self.start:], scores)


def _answer_only_processors(params: GenParams, start: int) -> Any:
    from transformers import LogitsProcessorList
    from transformers.generation.logits_process import RepetitionPenaltyLogitsProcessor

    procs = LogitsProcessorList()
    if params.repetition_penalty and params.repetition_penalty != 1.0:
        procs.append(RepetitionPenaltyLogitsProcessor(params.repetition_penalty, prompt_ignore_length=start))
    if params.no_repeat_ngram_size:
        procs.append(_AnswerOnlyNGramBan(params.no_repeat_ngram_size, start))
    return procs


def penalty_kwargs(repetition_penalty: float, no_repeat_ngram_size: int, scope: str, start: int) -> dict[str, Any]:
    """``model.generate`` keyword arguments for the anti-repetition settings (the server's and the eval's
    local models decode alike): scope "generated" penalises the answer's tokens only (``start`` = the padded
    prompt width), "all" is transformers' own whole-sequence behaviour."""
    if scope == "generated":
        return {"logits_processor": _answer_only_processors(
            GenParams(repetition_penalty=repetition_penalty, no_repeat_ngram_size=no_repeat_ngram_size), start)}
    out: dict[str, Any] = {}
    if repetition_penalty and repetition_penalty != 1.0:
        out["repetition_penalty"] = repetition_penalty
    if no_repeat_ngram_size:
        out["no_repeat_ngram_size"] = no_repeat_ngram_size
    return out


def load_hf_generator(model: str, adapter: str | None = None, merged: str | None = None, dtype: str = "auto",
                      quantization: str | None = None, merge_adapter: bool = True, max_batch: int = 8,
                      threads: int | None = None) -> HFGenerator:
    """Load a model for serving: ``merged`` (a merged checkpoint) wins over ``model``; an ``adapter`` is
    attached with peft and, unless quantized or ``merge_adapter=False``, merged for speed (an attached adapter
    costs ~20-35% of generation speed on CPU)."""
    import torch

    from .. import models

    if threads:
        torch.set_num_threads(threads)
    if dtype == "auto":
        dtype = "bfloat16" if torch.cuda.is_available() else "float32"
    source = merged or model
    loaded = models.load(source, quantization=quantization, dtype=dtype,
                         device_map="auto" if torch.cuda.is_available() else None)
    net, tok = loaded.model, loaded.tokenizer
    name = source if source not in (models.DEFAULT_MODEL,) else models.DEFAULT_NAME
    if adapter and not merged:
        from pathlib import Path

        from peft import PeftModel

        if not (Path(adapter) / "adapter_config.json").exists():
            raise models.ModelLoadError(f"{adapter}: not a PEFT adapter directory (no adapter_config.json)")
        net = PeftModel.from_pretrained(net, adapter)
        if merge_adapter and quantization in (None, "none"):
            net = net.merge_and_unload()
        name = f"{name}+{Path(adapter).name}"
    net.eval()
    return HFGenerator(net, tok, model_name=name, max_batch=max_batch)
