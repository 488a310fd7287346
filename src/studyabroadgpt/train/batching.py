"""Deterministic step planning, packing and padding-free collation.

Each epoch visits the examples in a seeded permutation. An optimizer step consumes a *contiguous* run of that
permutation, so the data cursor is just ``(epoch, offset)``: that is what makes a resume with a different batch
size or device count possible — the remaining examples are simply re-planned with the new shape.

Within a step the examples are packed first-fit into ``batch_size × grad_accum × world`` rows of at most
``seq_len`` tokens (one example per row when packing is off), the rows are sorted by length and cut into
micro-batches (length grouping: rows of a micro-batch have similar lengths, so padding is small), and the
micro-batches are dealt round-robin to the ranks.

Collation is padding-free in the attention sense: every packed example restarts its ``position_ids`` at 0 and no
attention mask is passed, so transformers builds a block-diagonal causal mask from the position resets and no
token attends across examples. Row padding (to the longest row of a micro-batch) is its own position run, never
trained, and never counted as a token.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

from .formatting import IGNORE, Example


@dataclass
class StepPlan:
    epoch: int
    start: int  # offset into the epoch permutation (inclusive)
    end: int    # exclusive; the cursor after this step is (epoch, end)
    micro_batches: list[list[list[int]]]  # per micro-batch: rows; per row: example indices
    tokens: int          # real tokens in the step (all ranks)
    trained_tokens: int  # tokens with a loss (all ranks)


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(n)


def _fill_rows(lengths: Sequence[int], order: np.ndarray, start: int, stop: int, n_rows: int, seq_len: int,
               packing: bool) -> tuple[list[list[int]], int]:
    """First-fit examples ``order[start:]`` into at most n_rows rows; returns rows and the new offset."""
    rows: list[list[int]] = []
    room: list[int] = []
    i = start
    while i < stop:
        idx = int(order[i])
        need = min(lengths[idx], seq_len)
        slot = next((r for r, free in enumerate(room) if free >= need), None) if packing else None
        if slot is None:
            if len(rows) == n_rows:
                break
            rows.append([])
            room.append(seq_len)
            slot = len(rows) - 1
        rows[slot].append(idx)
        room[slot] -= need
        i += 1
    return rows, i


def plan_steps(examples: Sequence[Example], *, seed: int, epochs: float, seq_len: int, packing: bool,
               batch_size: int, grad_accum: int, world_size: int = 1, cursor: tuple[int, int] = (0, 0)
               ) -> Iterator[StepPlan]:
    """Yield every remaining optimizer step from ``cursor`` = (epoch, offset) to the end of training."""
    lengths = [len(e) for e in examples]
    trained = [e.n_trained for e in examples]
    n = len(examples)
    n_rows = batch_size * grad_accum * world_size
    full_epochs, frac = int(epochs), epochs - int(epochs)
    epoch, offset = cursor
    while True:
        stop = n if epoch < full_epochs else int(round(frac * n))
        if epoch > full_epochs or stop == 0 or (epoch == full_epochs and frac == 0):
            return
        order = epoch_order(n, seed, epoch)
        while offset < stop:
            rows, new_offset = _fill_rows(lengths, order, offset, stop, n_rows, seq_len, packing)
            rows.sort(key=lambda r: -sum(min(lengths[i], seq_len) for i in r))
            mbs = [rows[k:k + batch_size] for k in range(0, len(rows), batch_size)]
            flat = [i for r in rows for i in r]
            yield StepPlan(epoch, offset, new_offset, mbs,
                           tokens=sum(min(lengths[i], seq_len) for i in flat),
                           trained_tokens=sum(trained[i] for i in flat))
            offset = new_offset
        epoch, offset = epoch + 1, 0


def count_steps(examples: Sequence[Example], **kw) -> int:
    return sum(1 for _ in plan_steps(examples, **kw))


def rank_micro_batches(step: StepPlan, rank: int, world_size: int) -> list[tuple[list[list[int]], bool]]:
    """This rank's micro-batches as (rows, is_dummy). Every rank gets the same count, so DDP's gradient
    all-reduce (on the last backward of the step) is reached by all ranks; a rank short of data re-runs a
    real micro-batch with zero loss weight instead of hanging the others."""
    mine = step.micro_batches[rank::world_size]
    per_rank = -(-len(step.micro_batches) // world_size)
    out = [(mb, False) for mb in mine]
    while len(out) < per_rank:
        out.append((step.micro_batches[0], True))
    return out


def collate(examples: Sequence[Example], rows: list[list[int]], pad_id: int) -> dict:
    """Concatenate each row's examples with restarting position ids; targets are pre-shifted per example.

    Shifting inside each example (rather than across the packed row) means the last token of one example is
    never asked to predict the first token of the next.
    """
    import torch

    ids_rows, tgt_rows, pos_rows = [], [], []
    for row in rows:
        ids, tgt, pos = [], [], []
        for idx in row:
            ex = examples[idx]
            ids.extend(ex.input_ids)
            tgt.extend(ex.labels[1:] + [IGNORE])
            pos.extend(range(len(ex.input_ids)))
        ids_rows.append(ids)
        tgt_rows.append(tgt)
        pos_rows.append(pos)
    width = max(len(r) for r in ids_rows)
    for ids, tgt, pos in zip(ids_rows, tgt_rows, pos_rows):
        pad = width - len(ids)
        ids.extend([pad_id] * pad)
        tgt.extend([IGNORE] * pad)
        pos.extend(range(pad))  # a separate position run: padding attends only to padding
    return {
        "input_ids": torch.tensor(ids_rows, dtype=torch.long),
        "targets": torch.tensor(tgt_rows, dtype=torch.long),
        "position_ids": torch.tensor(pos_rows, dtype=torch.long),
    }
