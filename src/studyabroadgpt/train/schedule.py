"""Learning-rate schedule that survives a change of batch shape mid-run.

transformers' ``get_scheduler`` gives the schedule *shape* (warmup, linear / cosine decay) as a function of the
step. When a run resumes with a different batch size or device count, the number of remaining optimizer steps
changes; instead of jumping to a new point of a new schedule, we time-warp the remaining part of the original
one over the new step count, so the learning rate stays continuous and still reaches its end value exactly at
the last step.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch


def _shape(name: str, warmup: int, total: int) -> Callable[[float], float]:
    from transformers import get_scheduler

    dummy = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    try:
        sched = get_scheduler(name, dummy, num_warmup_steps=warmup, num_training_steps=total)
    except ValueError as exc:
        from ..config import ConfigError

        raise ConfigError(f"scheduler {name!r}: {exc}") from exc
    return sched.lr_lambdas[0]


@dataclass
class WarpedSchedule:
    name: str
    warmup: int
    total: int  # nominal steps of the original plan
    # (actual_step, nominal_step, nominal steps per actual step) segments, in order
    warp: list[list[float]] = field(default_factory=lambda: [[0, 0, 1.0]])

    def __post_init__(self) -> None:
        self._fn = _shape(self.name, self.warmup, max(self.total, 1))

    def nominal(self, step: int) -> float:
        seg = [s for s in self.warp if s[0] <= step][-1]
        return min(seg[1] + (step - seg[0]) * seg[2], float(self.total))

    def factor(self, step: int) -> float:
        return float(self._fn(self.nominal(step)))

    def replan(self, step: int, remaining_steps: int) -> None:
        """From ``step`` on, stretch what is left of the nominal schedule over ``remaining_steps``."""
        here = self.nominal(step)
        scale = (self.total - here) / max(remaining_steps, 1)
        self.warp = [s for s in self.warp if s[0] < step] + [[step, here, scale]]

    def state(self) -> dict[str, Any]:
        return {"name": self.name, "warmup": self.warmup, "total": self.total, "warp": self.warp}

    @classmethod
    def from_state(cls, d: dict[str, Any]) -> "WarpedSchedule":
        return cls(d["name"], d["warmup"], d["total"], [list(s) for s in d["warp"]])
