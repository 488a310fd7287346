"""Timing of TRL's ``SFTTrainer`` shared by bench_train.py and gpu_check.py: real tokens/s over the steps after
the first, and the logged losses.

Tokens are counted in the data collator, from the attention mask when the batch has one (padding-free and packed
batches carry no padding, so then every input id counts) — never from pad ids, because SmolLM2 pads with its EOS
id. A step's micro-batches are collated between the end of the previous step and the end of this one, so the
clock and the counter are read together at each step end; the first step (one-off allocator and kernel warm-up)
is left out of the rate.
"""
from __future__ import annotations

import time
from typing import Any


class TRLTiming:
    """``TRLTiming(trainer, cuda=False)`` before ``trainer.train()``; ``result()`` after it."""

    def __init__(self, trainer: Any, cuda: bool = False):
        from transformers import TrainerCallback

        self.tokens = 0
        self.marks: list[tuple[float, int]] = []
        self.losses: list[float] = []
        collator = trainer.data_collator

        def counting_collator(features):
            batch = collator(features)
            mask = batch.get("attention_mask")
            self.tokens += int(mask.sum()) if mask is not None else int(batch["input_ids"].numel())
            return batch

        trainer.data_collator = counting_collator
        timing = self

        class Timer(TrainerCallback):
            def on_train_begin(self, *a, **k):
                if cuda:
                    import torch

                    torch.cuda.reset_peak_memory_stats()  # the peak of training, not of loading
                timing.marks.append((time.monotonic(), timing.tokens))

            def on_step_end(self, *a, **k):
                if cuda:
                    import torch

                    torch.cuda.synchronize()  # a step's kernels are done before its time is read
                timing.marks.append((time.monotonic(), timing.tokens))

            def on_log(self, args_, state, control, logs=None, **k):
                if logs and "loss" in logs:
                    timing.losses.append(float(logs["loss"]))

        trainer.add_callback(Timer())

    def result(self) -> dict:
        """steps timed, tokens, seconds, tokens/s, first and last logged loss."""
        if len(self.marks) > 2:  # leave the first step out
            (t1, n1), (t_end, n_end), steps = self.marks[1], self.marks[-1], len(self.marks) - 2
        else:
            (t1, n1), (t_end, n_end), steps = self.marks[0], self.marks[-1], len(self.marks) - 1
        seconds = t_end - t1
        return {"trainer": "trl", "steps": steps, "tokens": n_end - n1, "seconds": seconds,
                "tokens_per_s": (n_end - n1) / seconds if seconds > 0 else 0.0,
                "first_loss": self.losses[0] if self.losses else None,
                "last_loss": self.losses[-1] if self.losses else None}
