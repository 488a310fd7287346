"""The training loop: phases → optimizer steps → micro-batches, with checkpoints, a time budget and resume.

Read top to bottom: ``run`` sets up the accelerator, model and run directory, then ``_train_phase`` runs each
phase. Everything a later session needs to continue is in the bundle (see checkpoint.py); everything a person
looks at is in the run directory (see outputs.py).
"""
from __future__ import annotations

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

from ..config import ConfigError
from ..data.load import load_valid
from ..utils import atomic_dir, atomic_write_json, atomic_write_text, fingerprint_obj, library_versions
from . import checkpoint as ckpt
from .batching import StepPlan, collate, count_steps, plan_steps, rank_micro_batches
from .config import TrainConfig, dump_yaml, parse_duration
from .formatting import Example, encode_all
from .modeling import TrainedPositionsLoss, build_optimizer, load_for_training, trainable_parameters
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


def _device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def _load_examples(cfg: TrainConfig, dataset: str, tok: Any) -> tuple[list[Example], dict[str, Any], str, Any]:
    loaded = load_valid(dataset)
    convs, quarantine = loaded.conversations, loaded.quarantined
    if not convs:
        from ..data.io import DataError

        raise DataError(f"{dataset}: no valid conversation to train on ({len(quarantine)} rows quarantined)")
    examples, stats = encode_all(tok, convs, cfg.seq_len)
    stats["quarantined_rows"] = len(quarantine)
    # Content fingerprint: the same conversations in JSONL or Parquet train identically, so they match.
    fingerprint = fingerprint_obj([c.model_dump(mode="json") for c in convs])
    kb_versions = sorted({str(v) for c in convs for k, v in c.metadata.items() if k in ("kb_version", "kb")})
    return examples, stats, fingerprint, kb_versions


def _plan_kwargs(cfg: TrainConfig, world: int) -> dict[str, Any]:
    return dict(seed=cfg.seed, epochs=cfg.epochs, seq_len=cfg.seq_len, packing=cfg.packing,
                batch_size=cfg.batch_size, grad_accum=cfg.grad_accum, world_size=world)


def run(config: TrainConfig | dict | str | Path, *, resume: str | Path | None = None, adapter_only: bool = False,
        allow_data_change: bool = False, time_budget: str | None = None, overwrite: bool = False,
        command: list[str] | None = None, console: Console | None = None) -> Path:
    """Train (or continue) a LoRA/QLoRA run; returns the run directory.

    ``resume``: a bundle (``runs/x/handoff``, ``runs/x/checkpoints/step-…``) or a run directory, in which case
    the most advanced of its handoff bundle and latest checkpoint is used.
    """
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    started = time.monotonic()
    cfg = _as_config(config)
    budget_s = parse_duration(time_budget or cfg.time_budget) if (time_budget or cfg.time_budget) else None
    console = console or Console(stderr=True)
    device = _device()
    if device == "cpu" and cfg.threads:
        torch.set_num_threads(_cpu_threads(cfg.threads, console))
    _check_trackers(cfg.report_to)

    if resume:
        resume = ckpt.find_bundle(Path(resume))
    bundle_state = ckpt.read_state(Path(resume)) if resume else None
    state = RunState.from_dict(bundle_state) if bundle_state else RunState()
    set_seed(cfg.seed)

    # Precision is decided before the accelerator exists (it needs the device's compute capability).
    from .modeling import choose_precision

    prec = choose_precision(cfg, device)
    accelerator = Accelerator(cpu=device == "cpu", mixed_precision=prec.autocast or "no",
                              log_with=cfg.report_to or None, project_dir=str(cfg.run_dir()))
    main = accelerator.is_main_process
    world, rank = accelerator.num_processes, accelerator.process_index
    say = console.print if main else (lambda *a, **k: None)

    run_dir = cfg.run_dir()
    say(f"[bold]recipe[/] {cfg.name}  →  {run_dir}")
    if main:
        console.print_json(cfg.model_dump_json())
    from accelerate.utils import DistributedType

    sharded = accelerator.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED)
    model, tok, prec = load_for_training(cfg, device, sharded)
    n_train, n_total = trainable_parameters(model)
    say(f"model {cfg.model}: {n_total / 1e6:.1f}M params, {n_train / 1e6:.2f}M trainable (LoRA r={cfg.lora.r}); "
        f"{cfg.quantization} weights {prec.weights}, compute {prec.autocast or 'fp32'} ({prec.why}); "
        f"world size {world}")
    loss_mod = TrainedPositionsLoss(model)

    if resume:
        ckpt.load_adapter_weights(model, Path(resume))
    if main:
        _prepare_run_dir(run_dir, fresh=not resume, overwrite=overwrite)
        atomic_write_text(run_dir / "config.yaml", dump_yaml(cfg))
    metrics = MetricsLog(run_dir / "metrics.jsonl", resume_step=state.global_step if resume else None) \
        if main else None
    if cfg.report_to:
        accelerator.init_trackers(cfg.name, config=cfg.model_dump(mode="json"))

    phases = cfg.resolved_phases()
    session = {"started_step": state.global_step, "world_size": world, "device": device,
               "command": command or sys.argv, "resumed_from": str(resume) if resume else None}
    state.sessions.append(session)
    budget = Budget(budget_s, started)
    stopped_by, info = "completed", {}
    prepared = None
    for pi in range(state.phase_index, len(phases)):
        pcfg = phases[pi]
        examples, stats, fingerprint, kb_versions = _load_examples(pcfg, pcfg.dataset, tok)
        resuming_here = bool(resume) and pi == state.phase_index and bundle_state is not None \
            and bundle_state["phase_index"] == pi
        if resuming_here and fingerprint != state.dataset_fingerprint:
            if not allow_data_change:
                raise ConfigError(
                    f"{pcfg.dataset}: the dataset changed since the bundle was written (fingerprint {fingerprint} "
                    f"≠ {state.dataset_fingerprint}); resuming would silently mix two datasets. Pass "
                    "--allow-data-change to continue on the new data from the same cursor.")
            say(f"[yellow]dataset changed[/] ({state.dataset_fingerprint} → {fingerprint}); continuing from the "
                "same cursor because --allow-data-change was given")
            state.offset = min(state.offset, len(examples))
        if not resuming_here:
            state.phase_step, state.epoch, state.offset, state.schedule = 0, 0, 0, None
        state.phase_index = pi
        state.dataset_fingerprint = fingerprint
        info = {"data": stats, "kb_versions": kb_versions, "precision": prec.__dict__,
                "trainable_params": n_train, "total_params": n_total}
        if main:
            _write_run_info(run_dir, cfg, state, info, device, world, session)
        optimizer, opt_kind = build_optimizer(pcfg, model, device, pcfg.lr)
        if resuming_here and not adapter_only:
            optimizer.load_state_dict(torch.load(Path(resume) / "optimizer.pt", weights_only=False))
        elif resuming_here:
            say("[yellow]--adapter-only[/]: optimizer moments start fresh; data cursor and schedule continue")
        if prepared is None:
            # DeepSpeed needs model and optimizer prepared in one call; later phases only swap the optimizer.
            prepared, optimizer = accelerator.prepare(loss_mod, optimizer)
        else:
            optimizer = accelerator.prepare(optimizer)
        schedule, total_steps = _schedule(pcfg, examples, state, world, resuming_here, say)
        if resuming_here:
            rng = ckpt.load_rng(Path(resume), rank)
            if rng is not None:
                ckpt.set_rng_state(rng)
        say(f"phase {pi + 1}/{len(phases)} [bold]{cfg.phase_names()[pi]}[/]: {len(examples)} conversations "
            f"({stats['truncated']} truncated to {pcfg.seq_len}, {stats['dropped_no_trained_tokens']} dropped), "
            f"optimizer {opt_kind}, {total_steps} steps planned, starting at step {state.phase_step}")
        stopped_by = _train_phase(pcfg, cfg, accelerator, prepared, model, tok, optimizer, schedule, total_steps,
                                  examples, state, budget, metrics, run_dir, console)
        if stopped_by == "time_budget":
            break
        if pi + 1 < len(phases) and main:
            with atomic_dir(run_dir / "phases" / cfg.phase_names()[pi] / "adapter") as tmp:
                ckpt.save_adapter(model, tok, tmp)

    wall = time.monotonic() - started
    sync = _rank_checksums(accelerator, model)
    if main:
        _finish(cfg, model, tok, state, metrics, run_dir, stopped_by, wall, device, console, budget_s, sync)
    if cfg.report_to:
        accelerator.end_training()
    return run_dir


def _cpu_threads(wanted: int, console: Console) -> int:
    """Spinning (active) OpenMP threads collapse 5-10x when other processes compete for the cores; with passive
    waiting they do not. `sagpt train` sets OMP_WAIT_POLICY=PASSIVE before torch loads, but an in-process caller
    may have loaded torch first — then, on a busy machine, one thread is the faster choice."""
    passive = os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE"
    busy = os.getloadavg()[0] > (os.cpu_count() or 1)
    if wanted > 1 and busy and not passive:
        console.print(f"[yellow]note[/]: the CPU is busy (load {os.getloadavg()[0]:.1f}) and OMP_WAIT_POLICY is not "
                      f"PASSIVE: training with 1 thread instead of {wanted} (set OMP_WAIT_POLICY=PASSIVE before "
                      "starting Python to use them all)")
        return 1
    return wanted


def _check_trackers(report_to: list[str]) -> None:
    import importlib.util

    needs = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}
    missing = [f"{t} (pip install {needs[t]})" for t in report_to if importlib.util.find_spec(needs[t]) is None]
    if missing:
        raise ConfigError(f"report_to: tracker package not installed: {', '.join(missing)}")


def _prepare_run_dir(run_dir: Path, fresh: bool, overwrite: bool) -> None:
    import shutil

    old = [p for p in (run_dir / "checkpoints", run_dir / "handoff") if p.exists()]
    if fresh and old:
        if not overwrite:
            raise ConfigError(f"{run_dir} already holds checkpoints of an earlier run; continue it with "
                              f"`sagpt train --resume {run_dir}`, or pass --overwrite to start over")
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


def _schedule(pcfg: TrainConfig, examples: list[Example], state: RunState, world: int, resuming: bool,
              say: Any) -> tuple[WarpedSchedule, int]:
    """The phase's lr schedule and its total step count (steps done + steps the plan still holds)."""
    rows = pcfg.batch_size * pcfg.grad_accum * world
    kw = _plan_kwargs(pcfg, world)
    remaining = count_steps(examples, cursor=(state.epoch, state.offset), **kw)
    if pcfg.max_steps is not None:
        remaining = min(remaining, max(pcfg.max_steps - state.phase_step, 0))
    if resuming and state.schedule:
        schedule = WarpedSchedule.from_state(state.schedule)
        if state.rows_per_step != rows:
            old_end = schedule.total
            schedule.replan(state.phase_step, remaining)
            say(f"[yellow]batch shape changed[/] ({state.rows_per_step} → {rows} rows per optimizer step, "
                f"batch {pcfg.batch_size} × accum {pcfg.grad_accum} × {world} processes): re-planned the remaining "
                f"schedule to {remaining} steps (was {old_end - state.phase_step}); the learning rate continues "
                "from where it was")
    else:
        total = remaining
        schedule = WarpedSchedule(pcfg.scheduler, math.ceil(pcfg.warmup_ratio * total), total)
    state.rows_per_step = rows
    state.schedule = schedule.state()
    return schedule, state.phase_step + remaining


def _train_phase(pcfg: TrainConfig, cfg: TrainConfig, accelerator: Any, prepared: Any, model: Any, tok: Any,
                 optimizer: Any, schedule: WarpedSchedule, total_steps: int, examples: list[Example],
                 state: RunState, budget: Budget, metrics: MetricsLog | None, run_dir: Path,
                 console: Console) -> str:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, \
        TimeRemainingColumn

    world, rank, main = accelerator.num_processes, accelerator.process_index, accelerator.is_main_process
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    eval_examples = _eval_examples(pcfg, tok) if pcfg.eval_steps and pcfg.eval_dataset else None
    trainable = [p for p in model.parameters() if p.requires_grad]
    plan = plan_steps(examples, cursor=(state.epoch, state.offset), **_plan_kwargs(pcfg, world))
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[tps]} tok/s"),
        TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=console, disable=not main,
        transient=False)
    prepared.train()
    with progress:
        task = progress.add_task(cfg.phase_names()[state.phase_index], total=total_steps,
                                 completed=state.phase_step, loss="-", tps="-")
        for step in plan:
            if state.phase_step >= total_steps:
                break
            if budget.must_stop():
                _handoff(cfg, accelerator, model, tok, optimizer, state, budget, metrics, run_dir, console)
                return "time_budget"
            t0 = time.monotonic()
            loss_sum, grad_norm = _optimizer_step(step, accelerator, prepared, optimizer, trainable, examples,
                                                  pad_id, pcfg, schedule, state.phase_step, world, rank)
            dt = time.monotonic() - t0
            budget.step_times.append(dt)
            state.phase_step += 1
            state.global_step += 1
            state.epoch, state.offset = step.epoch, step.end
            state.tokens_seen += step.tokens
            state.trained_tokens += step.trained_tokens
            state.train_time_s += dt
            loss = loss_sum / max(step.trained_tokens, 1)
            row = {"step": state.global_step, "epoch": round(step.epoch + step.end / len(examples), 4),
                   "loss": round(loss, 6), "lr": optimizer.param_groups[0]["lr"],
                   "grad_norm": round(grad_norm, 6) if math.isfinite(grad_norm) else None, "tokens": step.tokens,
                   "tokens_per_s": round(step.tokens / dt, 2), "elapsed_s": round(state.train_time_s, 2)}
            if len(cfg.phases) > 1:
                row["phase"] = cfg.phase_names()[state.phase_index]
            if main and state.global_step % pcfg.logging_steps == 0:
                metrics.append(row)
            if pcfg.report_to:
                accelerator.log(row, step=state.global_step)
            progress.update(task, advance=1, loss=f"{loss:.4f}", tps=f"{row['tokens_per_s']:.0f}")
            if eval_examples and state.phase_step % pcfg.eval_steps == 0:
                ev = evaluate(accelerator, prepared, eval_examples, pad_id, pcfg)
                if main:
                    metrics.append({"step": state.global_step, "eval_loss": round(ev, 6)})
            # Also checkpoint the last step of a phase: resuming a finished run (or phase) is then a no-op that
            # moves straight on instead of re-training from the previous periodic checkpoint.
            if state.phase_step % pcfg.save_steps == 0 or state.phase_step >= total_steps:
                _checkpoint(cfg, accelerator, model, tok, optimizer, state, budget, run_dir)
    return "completed"


def _optimizer_step(step: StepPlan, accelerator: Any, prepared: Any, optimizer: Any, trainable: list, examples,
                    pad_id: int, pcfg: TrainConfig, schedule: WarpedSchedule, phase_step: int, world: int,
                    rank: int) -> tuple[float, float]:
    """One optimizer step over this rank's micro-batches; returns (summed loss over all ranks, grad norm)."""
    mbs = rank_micro_batches(step, rank, world)
    # Normalise by the step's trained tokens over *all* ranks (DDP averages gradients, hence × world): every
    # trained token weighs the same whatever micro-batch or rank it landed in.
    scale = world / max(step.trained_tokens, 1)
    local = torch.zeros((), dtype=torch.float64)
    for i, (rows, dummy) in enumerate(mbs):
        batch = {k: v.to(accelerator.device) for k, v in collate(examples, rows, pad_id).items()}
        last = i == len(mbs) - 1
        ctx = accelerator.no_sync(prepared) if (not last and world > 1) else _null()
        with ctx:
            loss_sum = prepared(**batch)
            weight = 0.0 if dummy else scale
            accelerator.backward(loss_sum * weight)
        if not dummy:
            local += loss_sum.detach().double().cpu()
    grad_norm = accelerator.clip_grad_norm_(trainable, pcfg.max_grad_norm)  # None under DeepSpeed (it clips)
    lr = pcfg.lr * schedule.factor(phase_step)
    for group in optimizer.param_groups:
        group["lr"] = lr
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    total = accelerator.reduce(local.to(accelerator.device), reduction="sum") if world > 1 else local
    return float(total), (float(grad_norm) if grad_norm is not None else float("nan"))


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def _eval_examples(pcfg: TrainConfig, tok: Any) -> list[Example]:
    convs = load_valid(pcfg.eval_dataset).conversations
    examples, _ = encode_all(tok, convs, pcfg.seq_len)
    return examples


@torch.no_grad()
def evaluate(accelerator: Any, prepared: Any, examples: list[Example], pad_id: int, pcfg: TrainConfig) -> float:
    prepared.eval()
    world, rank = accelerator.num_processes, accelerator.process_index
    total = torch.zeros(2, dtype=torch.float64)
    for i in range(rank, len(examples), world):
        batch = {k: v.to(accelerator.device) for k, v in collate(examples, [[i]], pad_id).items()}
        total[0] += float(prepared(**batch))
        total[1] += examples[i].n_trained
    prepared.train()
    if world > 1:
        total = accelerator.reduce(total.to(accelerator.device), reduction="sum").cpu()
    return float(total[0] / max(total[1], 1))


def _gather_rng(accelerator: Any) -> list[dict[str, Any]]:
    if accelerator.num_processes == 1:
        return [ckpt.rng_state()]
    from accelerate.utils import gather_object

    return gather_object([ckpt.rng_state()])


def _save(cfg: TrainConfig, accelerator: Any, model: Any, tok: Any, optimizer: Any, state: RunState, path: Path,
          budget: Budget) -> None:
    t0 = time.monotonic()
    rngs = _gather_rng(accelerator)  # collective: every rank takes part
    if accelerator.is_main_process:
        ckpt.save_bundle(path, model=model, tokenizer=tok, optimizer=optimizer, state=state.to_dict(),
                         config_yaml=dump_yaml(cfg), rank_rng=rngs)
    accelerator.wait_for_everyone()
    budget.save_s = time.monotonic() - t0


def _checkpoint(cfg, accelerator, model, tok, optimizer, state, budget, run_dir) -> None:
    root = run_dir / "checkpoints"
    _save(cfg, accelerator, model, tok, optimizer, state, root / f"step-{state.global_step:06d}", budget)
    if accelerator.is_main_process:
        ckpt.prune_checkpoints(root, cfg.keep_checkpoints)


def _handoff(cfg, accelerator, model, tok, optimizer, state, budget, metrics, run_dir, console) -> None:
    bundle = run_dir / "handoff"
    _save(cfg, accelerator, model, tok, optimizer, state, bundle, budget)
    if accelerator.is_main_process:
        cmd = f"sagpt train --resume {shlex.quote(str(bundle))}"
        if budget.seconds:
            cmd += f" --time-budget {cfg.time_budget or _fmt_duration(budget.seconds)}"
        atomic_write_text(bundle.parent / "RESUME.txt", cmd + "\n")
        console.print(f"[bold yellow]time budget reached[/] after step {state.global_step}: handoff bundle "
                      f"written to {bundle}\nresume anywhere with:\n  [bold]{cmd}[/]\n(add "
                      "--adapter-only to carry only the adapter, or key=value overrides such as batch_size=4)")


def _fmt_duration(seconds: float) -> str:
    h, rem = divmod(int(seconds), 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m}m" if h else (f"{m}m{s}s" if m else f"{s}s")


def _rank_checksums(accelerator: Any, model: Any) -> list[float]:
    """Sum of |LoRA weights| on every rank: DDP keeps replicas identical, and this proves it in the summary."""
    local = sum(float(p.detach().double().abs().sum()) for p in model.parameters() if p.requires_grad)
    if accelerator.num_processes == 1:
        return [local]
    from accelerate.utils import gather_object

    return gather_object([local])


def _finish(cfg, model, tok, state, metrics, run_dir, stopped_by, wall, device, console, budget_s,
            sync: list[float]) -> None:
    with atomic_dir(run_dir / "adapter") as tmp:
        ckpt.save_adapter(model, tok, tmp)
    rows = metrics.train_rows()
    phases = cfg.resolved_phases()
    pcfg = phases[min(state.phase_index, len(phases) - 1)]
    summary = summarize(
        rows, base_model=cfg.model, tokens_seen=state.tokens_seen, trained_tokens=state.trained_tokens,
        wall_time_s=wall, train_time_s=state.train_time_s, steps=state.global_step,
        epochs=rows[-1]["epoch"] if rows else 0.0, stopped_by=stopped_by, fingerprint=state.dataset_fingerprint,
        seed=cfg.seed, peak_mb=peak_memory_mb(device),
        extra={"phase": cfg.phase_names()[state.phase_index], "sessions": len(state.sessions),
               "seq_len": pcfg.seq_len, "time_budget_s": budget_s, "world_size": len(sync),
               "rank_lora_checksums": sync, "ranks_in_sync": max(sync) - min(sync) <= 1e-9 * max(1.0, max(sync))})
    write_summary(run_dir / "train_summary.json", summary)
    plot_metrics(metrics.rows, run_dir / "loss.png", f"{cfg.name} ({cfg.model})")
    if stopped_by == "completed":
        (run_dir / "RESUME.txt").unlink(missing_ok=True)
    console.print(f"[bold green]{stopped_by}[/]: {state.global_step} steps, loss {summary['first_loss']} → "
                  f"{summary['last_loss']} ({summary['loss_reduction_pct']}%), {summary['tokens_per_s']} tok/s, "
                  f"peak {summary['peak_memory_mb']:.0f} MB; adapter in {run_dir / 'adapter'}")


def _write_run_info(run_dir: Path, cfg: TrainConfig, state: RunState, info: dict[str, Any], device: str,
                    world: int, session: dict[str, Any]) -> None:
    import platform

    dev = torch.cuda.get_device_name() if device == "cuda" else f"cpu ({platform.processor() or platform.machine()}" \
        f", {torch.get_num_threads()} threads)"
    atomic_write_json(run_dir / "run_info.json", {
        "dataset": cfg.dataset, "dataset_fingerprint": state.dataset_fingerprint, "seed": cfg.seed,
        "library_versions": library_versions(), "command": " ".join(shlex.quote(a) for a in session["command"]),
        "device": dev, "world_size": world, "kb_version": (info["kb_versions"] or [None])[-1],
        "python": sys.version.split()[0], "cwd": os.getcwd(), **info, "sessions": state.sessions,
    })
