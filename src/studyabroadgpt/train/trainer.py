"""The training recipe: one object, ``setup → train → save``, with checkpoints, a time budget and resume.

``LoRARecipe`` holds the whole run's state on ``self`` (accelerator, model, optimizer, schedule, counters,
metrics), so each method reads like a paragraph of the recipe instead of threading a dozen positional
parameters through helpers:

* ``setup()`` — checks inputs first (recipe, bundle, datasets: cheap and clear errors before the model loads),
  then builds the accelerator, model, run directory and metrics log;
* ``train()`` — runs each remaining phase: optimizer, schedule, then optimizer steps until the phase ends or the
  time budget says stop (handoff bundle);
* ``save()`` — writes the final adapter, summary and plot; returns the run directory.

Everything a later session needs to continue is in the bundle (see checkpoint.py); everything a person looks at
is in the run directory (see outputs.py).
"""
from __future__ import annotations

import contextlib
import logging
import math
import os
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.markup import escape

from ..config import ConfigError
from ..data.load import Loaded, load_valid
from ..data.schema import Conversation
from ..utils import atomic_dir, atomic_write_json, atomic_write_text, fingerprint_obj, library_versions
from . import checkpoint as ckpt
from .batching import StepPlan, collate, count_steps, plan_steps, rank_micro_batches
from .config import TrainConfig, dump_yaml, format_duration, parse_duration
from .formatting import Example, encode_all
from .modeling import Precision, TrainedPositionsLoss, build_optimizer, choose_precision, load_for_training, \
    trainable_parameters
from .outputs import MetricsLog, peak_memory_mb, plot_metrics, summarize, write_summary
from .schedule import WarpedSchedule

log = logging.getLogger(__name__)


@dataclass
class RunState:
    """Counters carried across phases and sessions (saved in every bundle's state.json)."""
    global_step: int = 0
    phase_index: int = 0
    phase_step: int = 0
    epoch: int = 0
    offset: int = 0
    tokens_seen: int = 0
    trained_tokens: int = 0
    train_time_s: float = 0.0
    schedule: dict[str, Any] | None = None
    rows_per_step: int | None = None
    dataset_fingerprint: str | None = None
    sessions: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunState":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


@dataclass
class Budget:
    """Decides, before each step, whether another step *and* the handoff save still fit in the time budget."""
    seconds: float | None
    started: float
    step_times: list[float] = field(default_factory=list)
    save_s: float = 5.0  # replaced by the measured time of the last checkpoint save

    def must_stop(self) -> bool:
        if self.seconds is None or not self.step_times:
            return False  # always make progress: at least one step per session
        recent = self.step_times[-5:]
        next_step = max(recent) * 1.25  # steps vary ±15% on a shared CPU; plan for a slow one
        margin = 2.0 + 1.5 * self.save_s
        return time.monotonic() - self.started + next_step + margin > self.seconds


@dataclass
class PhaseData:
    """One phase's validated read (done before the model loads) and, once encoded, its examples."""
    name: str
    loaded: Loaded
    examples: list[Example] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    fingerprint: str = ""
    kb_versions: list[str] = field(default_factory=list)


def run(config: TrainConfig | dict | str | Path, *, resume: str | Path | None = None, adapter_only: bool = False,
        allow_data_change: bool = False, time_budget: str | None = None, overwrite: bool = False,
        command: list[str] | None = None, console: Console | None = None) -> Path:
    """Train (or continue) a LoRA/QLoRA run; returns the run directory.

    ``resume``: a bundle (``runs/x/handoff``, ``runs/x/checkpoints/step-…``) or a run directory, in which case
    the most advanced of its handoff bundle and latest checkpoint is used.
    """
    recipe = LoRARecipe(_as_config(config), resume=resume, adapter_only=adapter_only,
                        allow_data_change=allow_data_change, time_budget=time_budget, overwrite=overwrite,
                        command=command, console=console)
    recipe.setup()
    recipe.train()
    return recipe.save()


class LoRARecipe:
    """A LoRA / QLoRA fine-tuning run with assistant-only loss (see the module docstring for the three stages)."""

    def __init__(self, cfg: TrainConfig, *, resume: str | Path | None = None, adapter_only: bool = False,
                 allow_data_change: bool = False, time_budget: str | None = None, overwrite: bool = False,
                 command: list[str] | None = None, console: Console | None = None) -> None:
        self.cfg = cfg
        self.started = time.monotonic()
        self.resume_arg = Path(resume) if resume else None
        self.adapter_only = adapter_only
        self.allow_data_change = allow_data_change
        self.overwrite = overwrite
        self.command = command or sys.argv
        self.console = console or Console(stderr=True)
        budget = time_budget if time_budget is not None else cfg.time_budget  # "" is an error, not "none"
        self.budget_text: str | None = budget
        try:
            seconds = parse_duration(budget) if budget is not None else None
        except ValueError as exc:
            raise ConfigError(f"--time-budget: {exc}") from None
        self.budget = Budget(seconds, self.started)
        self.run_dir: Path = cfg.run_dir()
        self.phases: list[TrainConfig] = cfg.resolved_phases()
        self.phase_names: list[str] = cfg.phase_names()
        self.device: str = "cuda" if torch.cuda.is_available() else "cpu"
        # set by setup()
        self.bundle: Path | None = None
        self.bundle_state: dict[str, Any] | None = None
        self.state = RunState()
        self.data: dict[int, PhaseData] = {}  # phase index → its data, for the phases still to run
        self.eval_conversations: list[Conversation] = []
        self.accelerator: Any = None
        self.model: Any = None
        self.tok: Any = None
        self.prec: Precision | None = None
        self.loss_mod: TrainedPositionsLoss | None = None
        self.prepared: Any = None  # the loss module as the accelerator wrapped it (DDP / FSDP / DeepSpeed)
        self.metrics: MetricsLog | None = None
        self.session: dict[str, Any] = {}
        self.n_train = self.n_total = 0
        # set per phase by _start_phase()
        self.pcfg: TrainConfig = cfg
        self.optimizer: Any = None
        self.schedule: WarpedSchedule | None = None
        self.total_steps = 0
        self.examples: list[Example] = []
        self.eval_examples: list[Example] | None = None
        self.trainable: list[torch.nn.Parameter] = []
        self.pad_id = 0
        self.stopped_by = "completed"

    # ------------------------------------------------------------------------------------------------ setup
    @property
    def main(self) -> bool:
        return self.accelerator is None or self.accelerator.is_main_process

    @property
    def world(self) -> int:
        return self.accelerator.num_processes

    @property
    def rank(self) -> int:
        return self.accelerator.process_index

    def say(self, *args: Any, **kwargs: Any) -> None:
        if self.main:
            self.console.print(*args, **kwargs)

    def setup(self) -> None:
        from accelerate import Accelerator
        from accelerate.utils import DistributedType, set_seed

        cfg = self.cfg
        if self.device == "cpu" and cfg.threads:
            torch.set_num_threads(_cpu_threads(cfg.threads, self.console))
        _check_trackers(cfg.report_to)
        skipped: list[tuple[Path, str]] = []
        if self.resume_arg:
            self.bundle = ckpt.find_bundle(self.resume_arg)
            if not (self.resume_arg / "state.json").exists():  # a run dir: say which damaged bundles were passed over
                skipped = ckpt.newest_valid(self.resume_arg)[1]
            self.bundle_state = ckpt.read_state(self.bundle)
            self.state = RunState.from_dict(self.bundle_state)
        self._read_datasets()  # before the model: a missing or empty dataset should not cost a model load
        set_seed(cfg.seed)

        # Precision is decided before the accelerator exists (it needs the device's compute capability).
        prec = choose_precision(cfg, self.device)
        self.accelerator = Accelerator(cpu=self.device == "cpu", mixed_precision=prec.autocast or "no",
                                       log_with=cfg.report_to or None, project_dir=str(self.run_dir))
        self.say(f"[bold]recipe[/] {escape(cfg.name)}  →  {escape(str(self.run_dir))}")
        if self.main:
            self.console.print_json(cfg.model_dump_json())
        for p, problem in skipped:
            self.say(f"[yellow]skipped damaged bundle[/] {escape(str(p))}: {escape(problem)}")
        if self.bundle:
            self.say(f"resuming from {escape(str(self.bundle))} (step {self.state.global_step})")
        sharded = self.accelerator.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED)
        self.model, self.tok, self.prec = load_for_training(cfg, self.device, sharded)
        self.n_train, self.n_total = trainable_parameters(self.model)
        self.say(f"model {escape(cfg.model)}: {self.n_total / 1e6:.1f}M params, {self.n_train / 1e6:.2f}M trainable "
                 f"(LoRA r={cfg.lora.r}); {cfg.quantization} weights {self.prec.weights}, compute "
                 f"{self.prec.autocast or 'fp32'} ({self.prec.why}); world size {self.world}")
        self.loss_mod = TrainedPositionsLoss(self.model)
        self.pad_id = self.tok.pad_token_id if self.tok.pad_token_id is not None else self.tok.eos_token_id
        if self.bundle:
            ckpt.load_adapter_weights(self.model, self.bundle)
        if self.main:
            _prepare_run_dir(self.run_dir, fresh=self.bundle is None, overwrite=self.overwrite, say=self.say)
            ckpt.clean_stale(self.run_dir, keep=self.bundle)
            atomic_write_text(self.run_dir / "config.yaml", dump_yaml(cfg))
            self._report_data()
            self.metrics = MetricsLog(self.run_dir / "metrics.jsonl",
                                      resume_step=self.state.global_step if self.bundle else None)
        if cfg.report_to:
            self.accelerator.init_trackers(cfg.name, config=cfg.model_dump(mode="json"))
        self.session = {"started_step": self.state.global_step, "world_size": self.world, "device": self.device,
                        "command": self.command, "resumed_from": str(self.bundle) if self.bundle else None}
        self.state.sessions.append(self.session)

    def _read_datasets(self) -> None:
        """Read and validate every remaining phase's dataset (and the eval set) up front."""
        for pi in range(self.state.phase_index, len(self.phases)):
            pcfg = self.phases[pi]
            loaded = load_valid(pcfg.dataset)
            if not loaded.conversations:
                from ..data.io import DataError

                first = (loaded.quarantined[0].get("reasons") or [None])[0] if loaded.quarantined else None
                why = f"; first: {first['file']}:{first['line']}: {first['field']}: {first['message']}" \
                    if first else ""
                raise DataError(f"{pcfg.dataset}: no valid conversation to train on ({loaded.records} records, "
                                f"all {len(loaded.quarantined)} quarantined{why})")
            self.data[pi] = PhaseData(self.phase_names[pi], loaded)
        if self.cfg.eval_steps and self.cfg.eval_dataset:
            self.eval_conversations = load_valid(self.cfg.eval_dataset).conversations

    def _report_data(self) -> None:
        """Say what every phase keeps and quarantines; rejected rows go to ``quarantine/<phase>.jsonl``."""
        from ..utils import atomic_write_jsonl

        for d in self.data.values():
            q = self.run_dir / "quarantine" / f"{d.name}.jsonl"
            if d.loaded.quarantined:
                atomic_write_jsonl(q, d.loaded.quarantined)
            else:
                q.unlink(missing_ok=True)  # a stale file from an earlier run would tell the wrong story
            where = f" (rows and reasons in {escape(str(q))})" if d.loaded.quarantined else ""
            skipped = f"; {len(d.loaded.skipped)} files not read: " + "; ".join(
                escape(str(s)) for s in d.loaded.skipped[:3]) if d.loaded.skipped else ""
            self.say(f"data {escape(d.name)}: {escape(str(d.loaded.source))}: {d.loaded.records} records, "
                     f"{len(d.loaded.conversations)} kept, {len(d.loaded.quarantined)} quarantined{where}{skipped}")

    # ------------------------------------------------------------------------------------------------ train
    def train(self) -> str:
        """Run the remaining phases; returns why training stopped (``completed`` or ``time_budget``)."""
        with kept_heap(self.device == "cpu"):  # on GPUs the activations live in the CUDA caching allocator
            for pi in range(self.state.phase_index, len(self.phases)):
                self._start_phase(pi)
                self.stopped_by = self._train_phase()
                if self.stopped_by == "time_budget":
                    break
                if pi + 1 < len(self.phases) and self.main:
                    with atomic_dir(self.run_dir / "phases" / self.phase_names[pi] / "adapter") as tmp:
                        ckpt.save_adapter(self.model, self.tok, tmp)
        return self.stopped_by

    def _encode(self, pi: int) -> PhaseData:
        d = self.data[pi]
        convs = d.loaded.conversations
        d.examples, d.stats = encode_all(self.tok, convs, self.phases[pi].seq_len)
        d.stats["records"] = d.loaded.records
        d.stats["quarantined_rows"] = len(d.loaded.quarantined)
        # Content fingerprint: the same conversations in JSONL or Parquet train identically, so they match.
        d.fingerprint = fingerprint_obj([c.model_dump(mode="json") for c in convs])
        d.kb_versions = sorted({str(v) for c in convs for k, v in c.metadata.items() if k in ("kb_version", "kb")})
        return d

    def _start_phase(self, pi: int) -> None:
        """Encode the phase's data, check it against the bundle, build optimizer and schedule, restore RNG."""
        state, bs = self.state, self.bundle_state
        self.pcfg = pcfg = self.phases[pi]
        d = self._encode(pi)
        self.examples = d.examples
        resuming_here = self.bundle is not None and pi == state.phase_index and bs is not None \
            and bs["phase_index"] == pi
        if resuming_here and d.fingerprint != state.dataset_fingerprint:
            if not self.allow_data_change:
                raise ConfigError(
                    f"{pcfg.dataset}: the dataset changed since the bundle was written (fingerprint {d.fingerprint} "
                    f"≠ {state.dataset_fingerprint}); resuming would silently mix two datasets. Pass "
                    "--allow-data-change to continue on the new data from the same cursor.")
            self.say(f"[yellow]dataset changed[/] ({state.dataset_fingerprint} → {d.fingerprint}); continuing from "
                     "the same cursor because --allow-data-change was given")
            state.offset = min(state.offset, len(d.examples))
        if not resuming_here:
            state.phase_step, state.epoch, state.offset, state.schedule = 0, 0, 0, None
        state.phase_index = pi
        state.dataset_fingerprint = d.fingerprint
        if self.main:
            self._write_run_info(d)
        self.optimizer, opt_kind = build_optimizer(pcfg, self.model, self.device, pcfg.lr)
        if resuming_here and not self.adapter_only:
            self.optimizer.load_state_dict(ckpt.load_optimizer(self.bundle))
        elif resuming_here:
            self.say("[yellow]--adapter-only[/]: optimizer moments start fresh; data cursor and schedule continue")
        if self.prepared is None:
            # DeepSpeed needs model and optimizer prepared in one call; later phases only swap the optimizer.
            self.prepared, self.optimizer = self.accelerator.prepare(self.loss_mod, self.optimizer)
        else:
            self.optimizer = self.accelerator.prepare(self.optimizer)
        self.schedule, self.total_steps = self._plan_schedule(resuming_here)
        if resuming_here:
            rng = ckpt.load_rng(self.bundle, self.rank)
            if rng is not None:
                ckpt.set_rng_state(rng)
        self.eval_examples = encode_all(self.tok, self.eval_conversations, pcfg.seq_len)[0] \
            if pcfg.eval_steps and self.eval_conversations else None
        self.trainable = [p for p in self.model.parameters() if p.requires_grad]
        s = d.stats
        self.say(f"phase {pi + 1}/{len(self.phases)} [bold]{escape(self.phase_names[pi])}[/]: {len(d.examples)} "
                 f"conversations ({s['quarantined_rows']} quarantined, {s['truncated']} truncated to {pcfg.seq_len}, "
                 f"{s['dropped_no_trained_tokens']} with no trained token left), optimizer {opt_kind}, {self.total_steps} steps planned, starting at step "
                 f"{state.phase_step}")

    def _plan_kwargs(self) -> dict[str, Any]:
        p = self.pcfg
        return dict(seed=p.seed, epochs=p.epochs, seq_len=p.seq_len, packing=p.packing, batch_size=p.batch_size,
                    grad_accum=p.grad_accum, world_size=self.world)

    def _plan_schedule(self, resuming: bool) -> tuple[WarpedSchedule, int]:
        """The phase's lr schedule and its total step count (steps done + steps the plan still holds)."""
        pcfg, state = self.pcfg, self.state
        rows = pcfg.batch_size * pcfg.grad_accum * self.world
        remaining = count_steps(self.examples, cursor=(state.epoch, state.offset), **self._plan_kwargs())
        if pcfg.max_steps is not None:
            remaining = min(remaining, max(pcfg.max_steps - state.phase_step, 0))
        if resuming and state.schedule:
            schedule = WarpedSchedule.from_state(state.schedule)
            if state.rows_per_step != rows:
                old_end = schedule.total
                schedule.replan(state.phase_step, remaining)
                self.say(f"[yellow]batch shape changed[/] ({state.rows_per_step} → {rows} rows per optimizer step, "
                         f"batch {pcfg.batch_size} × accum {pcfg.grad_accum} × {self.world} processes): re-planned "
                         f"the remaining schedule to {remaining} steps (was {old_end - state.phase_step}); the "
                         "learning rate continues from where it was")
        else:
            schedule = WarpedSchedule(pcfg.scheduler, math.ceil(pcfg.warmup_ratio * remaining), remaining)
        state.rows_per_step = rows
        state.schedule = schedule.state()
        return schedule, state.phase_step + remaining

    def _train_phase(self) -> str:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, \
            TimeRemainingColumn

        pcfg, state = self.pcfg, self.state
        plan = plan_steps(self.examples, cursor=(state.epoch, state.offset), **self._plan_kwargs())
        progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[tps]} tok/s"),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=self.console,
            disable=not self.main, transient=False)
        self.prepared.train()
        with progress:
            task = progress.add_task(escape(self.phase_names[state.phase_index]), total=self.total_steps,
                                     completed=state.phase_step, loss="-", tps="-")
            for step in plan:
                if state.phase_step >= self.total_steps:
                    break
                if self.budget.must_stop():
                    self._handoff()
                    return "time_budget"
                t0 = time.monotonic()
                loss_sum, grad_norm = self._optimizer_step(step)
                dt = time.monotonic() - t0
                row = self._record_step(step, dt, loss_sum, grad_norm)
                progress.update(task, advance=1, loss=f"{row['loss']:.4f}", tps=f"{row['tokens_per_s']:.0f}")
                if self.eval_examples and state.phase_step % pcfg.eval_steps == 0:
                    ev = self.evaluate()
                    if self.main:
                        self.metrics.append({"step": state.global_step, "eval_loss": round(ev, 6)})
                # Also checkpoint the last step of a phase: resuming a finished run (or phase) is then a no-op
                # that moves straight on instead of re-training from the previous periodic checkpoint.
                if state.phase_step % pcfg.save_steps == 0 or state.phase_step >= self.total_steps:
                    self._checkpoint()
        return "completed"

    def _optimizer_step(self, step: StepPlan) -> tuple[float, float]:
        """One optimizer step over this rank's micro-batches; returns (summed loss over all ranks, grad norm)."""
        acc, world = self.accelerator, self.world
        mbs = rank_micro_batches(step, self.rank, world)
        # Normalise by the step's trained tokens over *all* ranks (DDP averages gradients, hence × world): every
        # trained token weighs the same whatever micro-batch or rank it landed in.
        scale = world / max(step.trained_tokens, 1)
        local = torch.zeros((), dtype=torch.float64)
        for i, (rows, dummy) in enumerate(mbs):
            batch = {k: v.to(acc.device) for k, v in collate(self.examples, rows, self.pad_id).items()}
            last = i == len(mbs) - 1
            with acc.no_sync(self.prepared) if (not last and world > 1) else contextlib.nullcontext():
                loss_sum = self.prepared(**batch)
                acc.backward(loss_sum * (0.0 if dummy else scale))
            if not dummy:
                local += loss_sum.detach().double().cpu()
        grad_norm = acc.clip_grad_norm_(self.trainable, self.pcfg.max_grad_norm)  # None under DeepSpeed (it clips)
        lr = self.pcfg.lr * self.schedule.factor(self.state.phase_step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        total = acc.reduce(local.to(acc.device), reduction="sum") if world > 1 else local
        return float(total), (float(grad_norm) if grad_norm is not None else float("nan"))

    def _record_step(self, step: StepPlan, dt: float, loss_sum: float, grad_norm: float) -> dict[str, Any]:
        state = self.state
        self.budget.step_times.append(dt)
        state.phase_step += 1
        state.global_step += 1
        state.epoch, state.offset = step.epoch, step.end
        state.tokens_seen += step.tokens
        state.trained_tokens += step.trained_tokens
        state.train_time_s += dt
        loss = loss_sum / max(step.trained_tokens, 1)
        row = {"step": state.global_step, "epoch": round(step.epoch + step.end / len(self.examples), 4),
               "loss": round(loss, 6), "lr": self.optimizer.param_groups[0]["lr"],
               "grad_norm": round(grad_norm, 6) if math.isfinite(grad_norm) else None, "tokens": step.tokens,
               "tokens_per_s": round(step.tokens / dt, 2), "elapsed_s": round(state.train_time_s, 2)}
        if len(self.cfg.phases) > 1:
            row["phase"] = self.phase_names[state.phase_index]
        if self.main and state.global_step % self.pcfg.logging_steps == 0:
            self.metrics.append(row)
        if self.pcfg.report_to:
            self.accelerator.log(row, step=state.global_step)
        return row

    @torch.no_grad()
    def evaluate(self) -> float:
        """Mean loss per trained token over the eval set (sharded over ranks)."""
        acc = self.accelerator
        self.prepared.eval()
        total = torch.zeros(2, dtype=torch.float64)
        for i in range(self.rank, len(self.eval_examples), self.world):
            batch = {k: v.to(acc.device) for k, v in collate(self.eval_examples, [[i]], self.pad_id).items()}
            total[0] += float(self.prepared(**batch))
            total[1] += self.eval_examples[i].n_trained
        self.prepared.train()
        if self.world > 1:
            total = acc.reduce(total.to(acc.device), reduction="sum").cpu()
        return float(total[0] / max(total[1], 1))

    # ----------------------------------------------------------------------------------------------- bundles
    def _save_bundle(self, path: Path) -> None:
        t0 = time.monotonic()
        rngs = self._gather([ckpt.rng_state()])  # collective: every rank takes part
        if self.main:
            ckpt.save_bundle(path, model=self.model, tokenizer=self.tok, optimizer=self.optimizer,
                             state=self.state.to_dict(), config_yaml=dump_yaml(self.cfg), rank_rng=rngs)
        self.accelerator.wait_for_everyone()
        self.budget.save_s = time.monotonic() - t0

    def _gather(self, local: list[Any]) -> list[Any]:
        if self.world == 1:
            return local
        from accelerate.utils import gather_object

        return gather_object(local)

    def _checkpoint(self) -> None:
        root = self.run_dir / "checkpoints"
        self._save_bundle(root / f"step-{self.state.global_step:06d}")
        if self.main:
            ckpt.prune_checkpoints(root, self.cfg.keep_checkpoints)

    def _handoff(self) -> None:
        bundle = self.run_dir / "handoff"
        self._save_bundle(bundle)
        if self.main:
            cmd = f"sagpt train --resume {shlex.quote(str(bundle))}"
            if self.budget.seconds:
                cmd += f" --time-budget {self.budget_text or format_duration(self.budget.seconds)}"
            atomic_write_text(bundle.parent / "RESUME.txt", cmd + "\n")
            self.console.print(f"[bold yellow]time budget reached[/] after step {self.state.global_step}: handoff "
                               f"bundle written to {escape(str(bundle))}\nresume anywhere with:\n  "
                               f"[bold]{escape(cmd)}[/]\n(add --adapter-only to carry only the adapter, or "
                               "key=value overrides such as batch_size=4)")

    # ------------------------------------------------------------------------------------------------- save
    def save(self) -> Path:
        """Final adapter, summary and plot (rank 0); returns the run directory."""
        wall = time.monotonic() - self.started
        # Sum of |LoRA weights| on every rank: DDP keeps replicas identical, and this proves it in the summary.
        sync = self._gather([sum(float(p.detach().double().abs().sum())
                                 for p in self.model.parameters() if p.requires_grad)])
        if self.main:
            self._write_outputs(wall, sync)
        if self.cfg.report_to:
            self.accelerator.end_training()
        return self.run_dir

    def _write_outputs(self, wall: float, sync: list[float]) -> None:
        cfg, state, run_dir = self.cfg, self.state, self.run_dir
        with atomic_dir(run_dir / "adapter") as tmp:
            ckpt.save_adapter(self.model, self.tok, tmp)
        rows = self.metrics.train_rows()
        pcfg = self.phases[min(state.phase_index, len(self.phases) - 1)]
        summary = summarize(
            rows, base_model=cfg.model, tokens_seen=state.tokens_seen, trained_tokens=state.trained_tokens,
            wall_time_s=wall, train_time_s=state.train_time_s, steps=state.global_step,
            epochs=rows[-1]["epoch"] if rows else 0.0, stopped_by=self.stopped_by,
            fingerprint=state.dataset_fingerprint, seed=cfg.seed, peak_mb=peak_memory_mb(self.device),
            extra={"phase": self.phase_names[state.phase_index], "sessions": len(state.sessions),
                   "seq_len": pcfg.seq_len, "time_budget_s": self.budget.seconds, "world_size": len(sync),
                   "rank_lora_checksums": sync,
                   "ranks_in_sync": max(sync) - min(sync) <= 1e-9 * max(1.0, max(sync))})
        write_summary(run_dir / "train_summary.json", summary)
        plot_metrics(self.metrics.rows, run_dir / "loss.png", f"{cfg.name} ({cfg.model})")
        if self.stopped_by == "completed":
            (run_dir / "RESUME.txt").unlink(missing_ok=True)
        ckpt.clean_stale(run_dir)
        self.console.print(f"[bold green]{self.stopped_by}[/]: {state.global_step} steps, loss "
                           f"{summary['first_loss']} → {summary['last_loss']} ({summary['loss_reduction_pct']}%), "
                           f"{summary['tokens_per_s']} tok/s, peak {summary['peak_memory_mb']:.0f} MB; adapter in "
                           f"{escape(str(run_dir / 'adapter'))}")

    def _write_run_info(self, d: PhaseData) -> None:
        import platform

        info = {"data": d.stats, "kb_versions": d.kb_versions, "precision": self.prec.__dict__,
                "trainable_params": self.n_train, "total_params": self.n_total}
        dev = torch.cuda.get_device_name() if self.device == "cuda" else \
            f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
        atomic_write_json(self.run_dir / "run_info.json", {
            "dataset": self.cfg.dataset, "dataset_fingerprint": self.state.dataset_fingerprint,
            "seed": self.cfg.seed, "library_versions": library_versions(),
            "command": " ".join(shlex.quote(a) for a in self.session["command"]), "device": dev,
            "world_size": self.world, "kb_version": (d.kb_versions or [None])[-1],
            "python": sys.version.split()[0], "cwd": os.getcwd(), **info, "sessions": self.state.sessions,
        })


def _cpu_threads(wanted: int, console: Console) -> int:
    """Spinning (active) OpenMP threads collapse 5-10x when other processes compete for the cores; with passive
    waiting they do not. `sagpt` sets OMP_WAIT_POLICY=PASSIVE before torch loads, but an in-process caller
    may have loaded torch first — then, on a busy machine, one thread is the faster choice."""
    passive = os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE"
    busy = os.getloadavg()[0] > (os.cpu_count() or 1)
    if wanted > 1 and busy and not passive:
        console.print(f"[yellow]note[/]: the CPU is busy (load {os.getloadavg()[0]:.1f}) and OMP_WAIT_POLICY is not "
                      f"PASSIVE: training with 1 thread instead of {wanted} (set OMP_WAIT_POLICY=PASSIVE before "
                      "starting Python to use them all)")
        return 1
    return wanted


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
_GLIBC_DEFAULT_THRESHOLD = 128 * 1024


@contextlib.contextmanager
def kept_heap(enabled: bool = True) -> Any:
    """Keep freed memory in glibc's heap while training instead of handing it back to the kernel.

    Why: a training step frees and re-allocates the same activation-sized buffers every micro-batch. By default
    glibc serves blocks above its mmap threshold (≤ 32 MB; the head's 256 × 49,152 fp32 chunks are 50 MB) with
    fresh mappings and trims the heap top once freed, so the kernel zero-fills and faults the pages in again each
    time. Measured on this session's 2-core Xeon VM with AMX-BF16 (SmolLM2-135M, seq 512, 4 × 512 tokens, bf16):
    170-209k minor page faults per optimizer step by default against 8-10k with the heap kept, +7 % and +11 %
    tokens per CPU-second in two interleaved pairs, the same losses, +67-91 MB peak RSS (blocks kept for reuse).
    On leaving, the thresholds go back to glibc's defaults and the kept memory is released (``malloc_trim``), so
    a process that goes on to serve does not hold the training peak. A no-op off glibc (musl, macOS, Windows).
    """
    libc = _glibc() if enabled else None
    if libc is None or not (libc.mallopt(_M_MMAP_THRESHOLD, 1 << 30) and libc.mallopt(_M_TRIM_THRESHOLD, 1 << 31)):
        yield
        return
    try:
        yield
    finally:
        libc.mallopt(_M_MMAP_THRESHOLD, _GLIBC_DEFAULT_THRESHOLD)
        libc.mallopt(_M_TRIM_THRESHOLD, _GLIBC_DEFAULT_THRESHOLD)
        libc.malloc_trim(0)


def _glibc() -> Any:
    import ctypes
    import platform

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


def _check_trackers(report_to: list[str]) -> None:
    import importlib.util

    needs = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}
    missing = [f"{t} (pip install {needs[t]})" for t in report_to if importlib.util.find_spec(needs[t]) is None]
    if missing:
        raise ConfigError(f"report_to: tracker package not installed: {', '.join(missing)}")


def _prepare_run_dir(run_dir: Path, fresh: bool, overwrite: bool, say: Any = None) -> None:
    """A fresh run refuses to clobber resumable checkpoints (unless ``overwrite``); leftovers that hold nothing
    resumable (a first save killed half-way) are removed instead of blocking every later run."""
    import shutil

    old = [p for p in (run_dir / "checkpoints", run_dir / "handoff", run_dir / ".handoff.old") if p.exists()]
    if fresh and old:
        found, damaged = ckpt.newest_valid(run_dir)
        if found is not None and not overwrite:
            raise ConfigError(f"{run_dir} already holds checkpoints of an earlier run; continue it with "
                              f"`sagpt train --resume {run_dir}`, or pass --overwrite to start over")
        if found is None and damaged and say is not None:
            say(f"[yellow]removed {len(damaged)} damaged bundle(s)[/] of an interrupted earlier run in "
                f"{escape(str(run_dir))} (nothing in them could be resumed)")
        for p in old:
            shutil.rmtree(p)
    run_dir.mkdir(parents=True, exist_ok=True)


def _as_config(config: TrainConfig | dict | str | Path) -> TrainConfig:
    from ..config import build
    from .config import load_train_config

    if isinstance(config, TrainConfig):
        return config
    if isinstance(config, dict):
        return build(TrainConfig, config)
    return load_train_config(config)
