"""``eval generate``: every system answers every item; outputs file + throughput per system."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..utils import atomic_write_json
from .items import EvalItem
from .outputs import Answer, write_outputs
from .systems import GenStats, System, stats_of


def generate(systems: Sequence[System], items: Sequence[EvalItem], out_path: str | Path | None = None,
             show_progress: bool = True) -> tuple[list[Answer], dict[str, dict]]:
    """Run each system over all items (one after the other, so timings do not compete for the CPU)."""
    names = [s.name for s in systems]
    if len(set(names)) != len(names):
        raise ValueError(f"system names must be unique, got {names}")
    answers: list[Answer] = []
    stats: dict[str, GenStats] = {}
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  disable=not show_progress, transient=False) as bar:
        for system in systems:
            task = bar.add_task(f"generate {system.name}", total=len(items))
            t0 = time.perf_counter()
            got = system.answer(items, progress=lambda n, task=task: bar.advance(task, n))
            stats[system.name] = stats_of(got, time.perf_counter() - t0)
            answers.extend(got)
            if out_path is not None and system is not systems[-1]:
                # Four systems on two busy cores take the better part of an hour: what is done so far can be
                # read (and survives a kill) before the last system finishes. The full file replaces it at the end.
                write_outputs(answers, _partial(out_path))
    gen = {name: s.to_dict() for name, s in stats.items()}
    if out_path is not None:
        out_path = Path(out_path)
        write_outputs(answers, out_path)
        atomic_write_json(out_path.with_name("generation.json"), gen)
        _partial(out_path).unlink(missing_ok=True)
    return answers, gen


def _partial(out_path: str | Path) -> Path:
    out_path = Path(out_path)
    return out_path.with_name(f"{out_path.stem}.partial{out_path.suffix}")
