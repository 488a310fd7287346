"""Building systems from options, and ``eval run``: generate → score → judge (if configured) → report."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from rich.console import Console

from ..config import ConfigError
from .config import EvalConfig, EndpointConfig, JudgeConfig
from .items import EvalItem, load_items

console = Console(stderr=True)


def with_system_prompt(items: list[EvalItem], system_prompt: str | None) -> list[EvalItem]:
    if not system_prompt:
        return items
    for it in items:
        if it.messages[0]["role"] != "system":
            it.messages = [{"role": "system", "content": system_prompt}] + it.messages
    return items


def build_systems(model_cfg, endpoints: list[EndpointConfig], max_new_tokens: int, batch_size: int) -> list[Any]:
    from .systems import EndpointSystem, HFSystem, load_pair

    systems: list[Any] = []
    if model_cfg is not None:
        model, tok = load_pair(model_cfg.base, model_cfg.adapter, dtype=model_cfg.dtype,
                               quantization=model_cfg.quantization)
        systems.append(HFSystem(model_cfg.base_name, model, tok, adapter=False, max_new_tokens=max_new_tokens,
                                batch_size=batch_size))
        if model_cfg.adapter:
            systems.append(HFSystem(model_cfg.tuned_name, model, tok, adapter=True, max_new_tokens=max_new_tokens,
                                    batch_size=batch_size))
    for ep in endpoints:
        systems.append(EndpointSystem(ep.name, ep.base_url, model=ep.model, api_key=_key(ep.api_key_env),
                                      max_new_tokens=max_new_tokens, answer_mode=ep.answer_mode))
    return systems


def build_judge(cfg: JudgeConfig):
    from .judge import EndpointJudge, HFJudge

    if cfg.endpoint:
        return EndpointJudge(cfg.endpoint, model=cfg.model, api_key=_key(cfg.api_key_env), max_tokens=cfg.max_tokens)
    return HFJudge(cfg.hf_model, max_tokens=cfg.max_tokens)


def _key(env: str | None) -> str | None:
    if env is None:
        return None
    if env not in os.environ:
        raise ConfigError(f"environment variable {env} (api_key_env) is not set")
    return os.environ[env]


def pick_pair(systems: list[str], a: str | None, b: str | None) -> tuple[str, str]:
    a = a or systems[0]
    b = b or next((s for s in systems if s != a), None)
    for name in (a, b):
        if name not in systems:
            raise ConfigError(f"judge system {name!r} not among the systems {systems}")
    if a == b:
        raise ConfigError("the judge needs two different systems")
    return a, b


def load_eval_items(prompts, system_prompt: str | None = None) -> list[EvalItem]:
    """The prompt set (default: the real-style set; ``limit`` takes a category-stratified subset) plus the
    held-out split of real data when one is given (ids prefixed ``heldout:``)."""
    from .items import REAL_STYLE, stratified

    path = prompts.path or REAL_STYLE
    items = load_items(path, mode=prompts.mode, split=prompts.split)
    if prompts.limit:
        items = stratified(items, prompts.limit, seed=prompts.seed)
    if prompts.heldout:
        held = load_items(prompts.heldout, mode=prompts.mode, limit=prompts.heldout_limit)
        for it in held:
            it.id = f"heldout:{it.id}"
            it.category = it.category or "heldout"
        items += held
    return with_system_prompt(items, system_prompt)


def grounded_systems(cfg: EvalConfig, systems: list[Any]) -> list[Any]:
    """The configured systems again behind the server's answer path, named "<name>+rag"."""
    from .systems import GroundedSystem

    if not cfg.grounding.systems:
        return []
    from ..serve.answer import Answerer

    answerer = Answerer.from_kb(cfg.grounding.kb, top_k=cfg.grounding.top_k)
    by_name = {s.name: s for s in systems}
    missing = [n for n in cfg.grounding.systems if n not in by_name]
    if missing:
        raise ConfigError(f"grounding.systems: {missing} not among the systems {list(by_name)}")
    return [GroundedSystem(f"{n}+rag", by_name[n], answerer, mode=cfg.grounding.mode) for n in cfg.grounding.systems]


def references_from_kb(items: list[EvalItem]) -> bool:
    """References of synthesized conversations are template answers written from the shipped KB."""
    return any(it.reference and str(it.meta.get("source") or "").startswith("synth-") for it in items)


def run_all(cfg: EvalConfig, show_progress: bool = True, extra_systems: Sequence[Any] = (),
            run_dir: str | Path | None = None) -> dict[str, Path]:
    """generate → score → judge (if configured) → report. ``extra_systems`` (anything with the System protocol,
    e.g. a ``CallableSystem``) are evaluated after the configured ones."""
    from .generate import generate
    from .judge import run_judge
    from .outputs import align, read_outputs
    from .report import write_report
    from .score import score_files

    out = Path(cfg.output_dir)
    items = load_eval_items(cfg.prompts, cfg.generation.system_prompt)
    console.print(f"[bold]eval[/]: {len(items)} items from {cfg.prompts.path or 'the real-style prompt set'}"
                  + (f" + {cfg.prompts.heldout}" if cfg.prompts.heldout else ""))
    systems = build_systems(cfg.model, cfg.endpoints, cfg.generation.max_new_tokens, cfg.generation.batch_size)
    systems += grounded_systems(cfg, systems) + list(extra_systems)
    if len(systems) < 2:
        raise ConfigError("an evaluation compares at least two systems: set model.adapter or add an endpoint")
    outputs = out / "outputs.jsonl"
    generate(systems, items, outputs, show_progress=show_progress)
    sc = cfg.score
    from_kb = references_from_kb(items) if sc.references_from_kb is None else sc.references_from_kb
    result = score_files([outputs], out, allow_empty=True, baseline=sc.baseline, n_resamples=sc.n_resamples,
                         seed=sc.seed, bertscore_model=sc.bertscore_model, bertscore_layer=sc.bertscore_layer,
                         use_audit=sc.audit, references_from_kb=from_kb, pairs=sc.compare,
                         prompts_label=str(cfg.prompts.path or "real_style.jsonl (shipped)"))
    judge_file = out / "judge.json"
    if cfg.judge is not None:
        _, answers = align(read_outputs([outputs], allow_empty=True))
        a, b = pick_pair(result["systems"], cfg.judge.a or result["baseline"], cfg.judge.b)
        run_judge(answers, a, b, build_judge(cfg.judge), out, both_orders=cfg.judge.both_orders,
                  seed=cfg.judge.seed, show_progress=show_progress)
    elif judge_file.exists():
        judge_file.unlink()  # a stale judgement from an earlier run must not appear in this report
    return write_report(out, run_dir=run_dir or cfg.report.run_dir, outputs=outputs)
