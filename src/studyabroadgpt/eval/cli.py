"""``sagpt eval …`` commands. Heavy imports (torch, transformers) happen inside the commands."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

eval_app = typer.Typer(help="Evaluate base vs fine-tuned honestly: metrics with CIs, blind judge, report.",
                       no_args_is_help=True)


@eval_app.command("generate")
def generate_cmd(
    prompts: str = typer.Option(..., "--prompts", "-p", help="CSV/JSONL with id,prompt[,reference], or a "
                                "conversations dataset (e.g. the held-out split)."),
    out: Path = typer.Option(..., "--out", "-o", help="Eval output directory (writes outputs.jsonl)."),
    base: Optional[str] = typer.Option("default", help="Base model source (models.load); 'none' for endpoints only."),
    adapter: Optional[str] = typer.Option(None, help="PEFT adapter dir, e.g. runs/<name>/adapter."),
    endpoint: List[str] = typer.Option([], help="Extra system NAME=URL of an OpenAI-compatible endpoint "
                                       "(repeatable), e.g. grounded=http://127.0.0.1:8000/v1."),
    endpoint_model: str = typer.Option("default", help="Model name sent to endpoints."),
    answer_mode: Optional[str] = typer.Option(None, "--answer-mode", help="For our own server's endpoints: "
                                              "generate | compose | auto per request (default: the server's)."),
    mode: str = typer.Option("first", help="Conversations: 'first' user turn or 'every' user turn with history."),
    split: Optional[str] = typer.Option(None, help="Split of a Hub dataset."),
    limit: Optional[int] = typer.Option(None, help="Only the first N items."),
    max_new_tokens: int = typer.Option(256),
    batch_size: int = typer.Option(4),
    dtype: str = typer.Option("float32"),
    system_prompt: Optional[str] = typer.Option(None, help="System message for items without one."),
    engine: str = typer.Option("hf", help="'hf' (transformers, one model load) or 'llamacpp' (base and adapter "
                               "as GGUFs through llama.cpp: several times faster on CPU)."),
) -> None:
    """Answer every prompt with the base model and the adapter (one model load), plus any endpoints."""
    import contextlib

    from .config import ModelConfig
    from .generate import generate
    from .run import build_systems, with_system_prompt
    from .items import load_items

    items = with_system_prompt(load_items(prompts, mode=_mode(mode), split=split, limit=limit), system_prompt)
    model_cfg = None if base in (None, "none") else ModelConfig(base=base, adapter=adapter, dtype=dtype)
    endpoints = [_endpoint(e, endpoint_model, answer_mode) for e in endpoint]
    if engine not in ("hf", "llamacpp"):
        from ..config import ConfigError

        raise ConfigError(f"unknown engine {engine!r}; use 'hf' or 'llamacpp'")
    with contextlib.ExitStack() as stack:
        if engine == "llamacpp" and model_cfg is not None:
            from ..serve.llamacpp_engine import eval_systems

            systems = eval_systems(stack, base, adapter, model_cfg.base_name, model_cfg.tuned_name, max_new_tokens)
            systems += build_systems(None, endpoints, max_new_tokens, batch_size)
        else:
            systems = build_systems(model_cfg, endpoints, max_new_tokens, batch_size)
        _, gen = generate(systems, items, out / "outputs.jsonl")
    for name, g in gen.items():
        typer.echo(f"{name}: {g['samples_per_s']:.2f} samples/s, {g['tokens_per_s']:.1f} tokens/s, "
                   f"truncated {g['truncation_rate']:.0%}")
    typer.echo(f"wrote {out / 'outputs.jsonl'}")


@eval_app.command("score")
def score_cmd(
    outputs: List[Path] = typer.Argument(..., help="Outputs file(s) with at least id,prompt,response."),
    out: Path = typer.Option(..., "--out", "-o", help="Eval output directory."),
    baseline: Optional[str] = typer.Option(None, help="System the others are compared with (default: first)."),
    bertscore_model: Optional[str] = typer.Option(None, help="Encoder for BERTScore (local dir or Hub id); "
                                                  "default the offline all-MiniLM-L6-v2."),
    bertscore_layer: Optional[int] = typer.Option(None, help="Hidden layer to use (default: last)."),
    resamples: int = typer.Option(1000, help="Bootstrap resamples."),
    seed: int = typer.Option(0),
    audit: bool = typer.Option(True, help="Run the knowledge-base claim audit when available."),
    allow_empty: bool = typer.Option(False, help="Score empty responses as empty instead of stopping."),
    prompts: Optional[Path] = typer.Option(None, "--prompts", "-p", help="Prompt set the answers came from (e.g. "
                                           "the real-style set): adds category/checks by id for the category "
                                           "metrics when the outputs file lacks them."),
    references_from_kb: bool = typer.Option(False, help="The references were written from the knowledge base "
                                            "(template data): the report says so next to BLEU/ROUGE/BERTScore."),
) -> None:
    """Metrics with bootstrap CIs and paired differences; writes scores.json, scores.jsonl, summary.json.

    Works on any file with id,prompt,response (answers produced elsewhere too): the student-facing metrics
    (loops, distinct-2, foreign URLs, unverified names, off-topic citations) need nothing else."""
    from .report import build_summary
    from .score import score_files

    result = score_files(outputs, out, allow_empty=allow_empty, baseline=baseline, n_resamples=resamples, seed=seed,
                         bertscore_model=bertscore_model, bertscore_layer=bertscore_layer, use_audit=audit,
                         prompts=prompts, references_from_kb=references_from_kb)
    build_summary(out)
    for c in result["comparisons"]:
        typer.echo(f"{c['metric']:<24} {c['b']} - {c['a']}: {c['diff']:+.4f} "
                   f"[{c['ci_low']:+.4f}, {c['ci_high']:+.4f}] {c['verdict']}")
    for m, why in result["unavailable"].items():
        typer.echo(f"{m:<24} unavailable: {why}")


@eval_app.command("judge")
def judge_cmd(
    outputs: List[Path] = typer.Argument(..., help="Outputs file(s) holding both systems' answers."),
    out: Path = typer.Option(..., "--out", "-o", help="Eval output directory."),
    endpoint: Optional[str] = typer.Option(None, help="OpenAI-compatible judge base URL."),
    model: str = typer.Option("default", help="Judge model name at the endpoint."),
    api_key_env: Optional[str] = typer.Option(None, help="Env var holding the judge API key."),
    hf_model: Optional[str] = typer.Option(None, help="Or a local HF model as judge (models.load source)."),
    a: Optional[str] = typer.Option(None, help="System a (default: first system)."),
    b: Optional[str] = typer.Option(None, help="System b (default: second system)."),
    both_orders: bool = typer.Option(True, help="Judge each item in both A/B orders (position bias, Bowker)."),
    seed: int = typer.Option(0),
    max_tokens: int = typer.Option(300),
) -> None:
    """Blind pairwise judge; writes judgements.jsonl, judge_key.jsonl, judge.json (and updates summary.json)."""
    from ..config import build
    from .config import JudgeConfig
    from .judge import run_judge
    from .outputs import align, read_outputs
    from .run import build_judge, pick_pair

    cfg = build(JudgeConfig, {"endpoint": endpoint, "model": model, "api_key_env": api_key_env,
                              "hf_model": hf_model, "both_orders": both_orders, "seed": seed,
                              "max_tokens": max_tokens}, "eval judge options")
    _, answers = align(read_outputs(outputs, allow_empty=True))
    sys_a, sys_b = pick_pair(list(answers), a, b)
    res = run_judge(answers, sys_a, sys_b, build_judge(cfg), out, both_orders=both_orders, seed=seed)
    if (out / "scores.json").exists():
        from .report import build_summary

        build_summary(out)
    c = res["counts"]
    typer.echo(f"{sys_b} vs {sys_a}: win {c['win']} / tie {c['tie']} / loss {c['loss']} "
               f"(unparseable items {res['unparseable_items']})")
    if res["bowker"]:
        typer.echo(f"McNemar-Bowker chi2({res['bowker']['df']})={res['bowker']['chi2']:.2f} "
                   f"p={res['bowker']['p_value']:.4g}")


@eval_app.command("report")
def report_cmd(
    eval_dir: Path = typer.Option(..., "--eval-dir", "-e", help="Directory with scores.json (and judge.json)."),
    run_dir: Optional[Path] = typer.Option(None, help="Training run dir: plots the loss from metrics.jsonl."),
    outputs: Optional[Path] = typer.Option(None, help="Outputs file for latency plots (default "
                                           "EVAL_DIR/outputs.jsonl)."),
) -> None:
    """summary.json, report.md and a self-contained report.html with plots."""
    from .report import write_report

    paths = write_report(eval_dir, run_dir=run_dir, outputs=outputs)
    typer.echo(f"wrote {paths['markdown']} and {paths['html']}")


@eval_app.command("run")
def run_cmd(
    config: Path = typer.Option(..., "--config", "-c", help="Eval recipe, e.g. configs/eval-smollm2.yaml."),
    overrides: List[str] = typer.Argument(None, help="key=value overrides, e.g. prompts.limit=4"),
) -> None:
    """The whole chain: generate → score → judge (if configured) → report."""
    from ..config import load_config
    from .config import EvalConfig
    from .run import run_all

    cfg = load_config(EvalConfig, config, overrides or [])
    paths = run_all(cfg)
    typer.echo(f"wrote {paths['markdown']} and {paths['html']}")


def _mode(mode: str):
    from ..config import ConfigError

    if mode not in ("first", "every"):
        raise ConfigError(f"--mode must be 'first' or 'every', got {mode!r}")
    return mode


def _endpoint(spec: str, model: str, answer_mode: str | None = None):
    from ..config import ConfigError
    from .config import EndpointConfig

    name, sep, url = spec.partition("=")
    if not sep or not name or not url:
        raise ConfigError(f"--endpoint {spec!r} must look like NAME=URL, e.g. grounded=http://127.0.0.1:8000/v1")
    return EndpointConfig(name=name, base_url=url, model=model, answer_mode=answer_mode)


def register(app: typer.Typer) -> None:
    app.add_typer(eval_app, name="eval")
