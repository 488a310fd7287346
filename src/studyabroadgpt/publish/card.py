"""The model card: Hub metadata + model-index from the eval, training summary, usage, and honest limitations.

The limitations section is the point of this module. The paper this toolkit follows published a fine-tune that
was worse than its base (27-29% of training answers held factual errors, official-source caveats dropped), and
nothing on its card said so. Here every number comes from the eval/audit files with its confidence interval,
a "worse than base" verdict is stated in the first lines of the card, and a model with no eval says so instead of
showing no numbers at all.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import PublishError
from .inputs import AuditInputs, EvalInputs, Interval, RunInputs, judge_verdict, to_interval

log = logging.getLogger(__name__)

PAPER = "arXiv:2504.15610"
PAPER_TITLE = "A LoRA-Based Approach to Fine-Tuning LLMs for Educational Guidance in Resource-Constrained Settings"
PAPER_AUTHOR = "Hosen, Md Millat"
EVAL_DATASET_TYPE = "studyabroadgpt-heldout"
TASK_TYPE = "text-generation"


@dataclass
class CardOptions:
    repo_id: str | None = None  # where it will live on the Hub (for usage snippets); None = a local folder
    model_name: str | None = None
    base_model: str = ""  # the Hub id shown in metadata
    base_source: str = ""  # what `sagpt serve --model` takes
    merged: bool = False
    license: str = "apache-2.0"
    language: list[str] = field(default_factory=lambda: ["en"])
    datasets: list[str] = field(default_factory=list)
    gguf_files: list[str] = field(default_factory=list)
    kb_version: str | None = None
    versions: dict[str, Any] = field(default_factory=dict)


def _metric_specs() -> dict[str, tuple[str, str]]:
    """name -> (label, direction) from the eval stage, when it is installed."""
    try:
        from ..eval.metrics import METRICS

        return {k: (v.label, v.direction) for k, v in METRICS.items()}
    except Exception:  # noqa: BLE001 - the eval stage is optional for a card
        return {}


def _label(metric: str) -> str:
    return _metric_specs().get(metric, (metric.replace("_", " "), ""))[0]


def _is_rate(metric: str) -> bool:
    return metric.endswith("_rate") or "rate_" in metric


def _fmt(iv: Interval | None, metric: str = "") -> str:
    return "n/a" if iv is None else iv.fmt(pct=_is_rate(metric))


def _signed(x: Any, digits: int = 3) -> str:
    """A difference with its sign; eval writes null for a statistic it could not compute."""
    return f"{x:+.{digits}f}" if isinstance(x, (int, float)) else "n/a"


def _diff(c: dict[str, Any]) -> str:
    return f"{_signed(c.get('diff'))} (95% CI {_signed(c.get('ci_low'))} to {_signed(c.get('ci_high'))})"


def eval_results(ev: EvalInputs) -> list[Any]:
    """One ``EvalResult`` per metric of the published system, plus the judge's win rate against the base."""
    from huggingface_hub import EvalResult

    results = []
    n = ev.n_items
    dataset_name = f"StudyAbroadGPT held-out advising prompts (n={n})" if n else "StudyAbroadGPT held-out prompts"
    for metric in (ev.summary.get("metrics") or {}):
        iv = ev.metric(metric, ev.ours)
        if iv is None:
            continue
        results.append(EvalResult(task_type=TASK_TYPE, task_name="Study-abroad advising",
                                  dataset_type=EVAL_DATASET_TYPE, dataset_name=dataset_name, dataset_split="test",
                                  metric_type=metric, metric_name=_label(metric), metric_value=round(iv.mean, 4)))
    judge = judge_verdict(ev.summary.get("judge"))
    if judge and "win" in judge["rates"]:
        results.append(EvalResult(task_type=TASK_TYPE, task_name="Study-abroad advising",
                                  dataset_type=EVAL_DATASET_TYPE, dataset_name=dataset_name, dataset_split="test",
                                  metric_type="judge_win_rate", metric_name=f"Blind judge win rate vs {judge['a']}",
                                  metric_value=round(judge["rates"]["win"].mean, 4)))
    return results


def card_data(run: RunInputs, opts: CardOptions, ev: EvalInputs | None) -> Any:
    from huggingface_hub import ModelCardData

    tags = ["studyabroadgpt", "study-abroad", "education", "advising", "lora", "sft"]
    if str(run.config.get("quantization", "")).lower() == "nf4":
        tags.append("qlora")
    if opts.merged:
        tags.append("merged")
    if opts.gguf_files:
        tags.append("gguf")
    results = eval_results(ev) if ev else []
    return ModelCardData(
        base_model=opts.base_model, library_name="transformers" if opts.merged else "peft", license=opts.license,
        language=opts.language, datasets=opts.datasets or None, tags=tags, pipeline_tag="text-generation",
        model_name=opts.model_name, eval_results=results or None,
    )


# ------------------------------------------------------------------------------------------------ the body


def headline(ev: EvalInputs | None) -> list[str]:
    """The verdict readers must see first: better, worse, or indistinguishable from the base model."""
    if ev is None or ev.ours is None:
        return ["> **Not evaluated.** No evaluation was published with this model: its quality against the base "
                "model is unknown. Treat every answer as unverified."]
    comps = ev.comparisons_for(ev.ours)
    worse = [c for c in comps if c.get("verdict") == "worse"]
    better = [c for c in comps if c.get("verdict") == "better"]
    judge = judge_verdict(ev.summary.get("judge"))
    lines = []
    if worse:
        items = "; ".join(f"{_label(c['metric'])}: {_diff(c)}" for c in worse)
        lines.append(f"> **Warning: this fine-tune is worse than the base model `{ev.baseline}` on "
                     f"{len(worse)} of {len(comps)} metrics** ({items}).")
    if better:
        lines.append(f"> Better than the base on: {', '.join(_label(c['metric']) for c in better)}.")
    if judge and judge.get("verdict"):
        lines.append(f"> Blind judge ({judge['b']} vs {judge['a']}, n={judge['n']}): **{judge['verdict']}**.")
    if not lines:
        lines.append(f"> On {ev.n_items} held-out prompts, no metric distinguishes `{ev.ours}` from the base "
                     f"model `{ev.baseline}` (all 95% CIs of the paired differences include zero).")
    return lines


def evaluation_section(ev: EvalInputs | None) -> list[str]:
    lines = ["## Evaluation", ""]
    if ev is None:
        return lines + ["Not evaluated. Run `sagpt eval` and publish again with `--eval` to fill this section.", ""]
    systems = [s for s in ev.summary.get("systems") or []]
    lines += [f"{ev.n_items} held-out prompts; the published weights are system **{ev.ours}**, the baseline is "
              f"**{ev.baseline}**. Means with 95% bootstrap confidence intervals (rates as percentages).", "",
              "| metric | " + " | ".join(systems) + " |", "|---|" + "---|" * len(systems)]
    for metric in ev.summary.get("metrics") or {}:
        lines.append(f"| {_label(metric)} | " + " | ".join(_fmt(ev.metric(metric, s), metric) for s in systems) + " |")
    comps = [c for c in ev.summary.get("comparisons") or [] if isinstance(c, dict)]
    if comps:
        lines += ["", "Paired differences (b − a; a verdict only when the 95% CI excludes zero):", "",
                  "| metric | comparison | difference | 95% CI | verdict |", "|---|---|---|---|---|"]
        for c in comps:
            lines.append(f"| {_label(c.get('metric', '?'))} | {c.get('b')} − {c.get('a')} | "
                         f"{_signed(c.get('diff'), 4)} | [{_signed(c.get('ci_low'), 4)}, "
                         f"{_signed(c.get('ci_high'), 4)}] | **{c.get('verdict')}** |")
    judge = judge_verdict(ev.summary.get("judge"))
    if judge:
        rates = ", ".join(f"{k} {v.fmt(pct=True)}" for k, v in judge["rates"].items())
        p = f", sign-test p = {judge['p_value']:.3g}" if judge.get("p_value") is not None else ""
        lines += ["", f"Blind pairwise judge `{judge.get('judge') or 'n/a'}` ({judge['b']} vs {judge['a']}, "
                  f"{judge['n']} items): {rates}{p}. Verdict: **{judge['verdict']}**."]
    unavailable = ev.summary.get("unavailable") or {}
    if unavailable:
        lines += ["", "Not computed: " + "; ".join(f"{_label(m)} ({why})" for m, why in unavailable.items()) + "."]
    if any(f.name == "report.md" for f in ev.files):
        lines += ["", "Full report: [`eval/report.md`](eval/report.md)."]
    return lines + [""]


def limitations_section(ev: EvalInputs | None, audit: AuditInputs | None, opts: CardOptions) -> list[str]:
    lines = ["## Limitations and risks", ""]
    facts: list[str] = []
    if ev is not None and ev.ours:
        for metric in ev.summary.get("metrics") or {}:
            low = metric.lower()
            if any(k in low for k in ("error", "contradict", "unsupported", "caveat")):
                ours, base = ev.metric(metric, ev.ours), ev.metric(metric, ev.baseline)
                base_txt = f" vs {_fmt(base, metric)} for the base model" if base else ""
                facts.append(f"**{_label(metric)}**: {_fmt(ours, metric)}{base_txt} (eval, n={ev.n_items}).")
        for c in ev.comparisons_for(ev.ours):
            if c.get("verdict") == "worse":
                facts.append(f"The fine-tune is **worse than the base model** on {_label(c['metric'])} "
                             f"(difference {_diff(c)}). "
                             "Prefer the base model, or serve this one only with retrieval grounding.")
        judge = judge_verdict(ev.summary.get("judge"))
        if judge and judge.get("verdict"):
            facts.append(f"A blind judge rated {judge['b']} against {judge['a']}: **{judge['verdict']}** "
                         f"(n={judge['n']}).")
    else:
        facts.append("**No evaluation was published**: factual error rates and caveat rates are unknown.")
    if audit is not None:
        source = audit.data.get("source")
        where = f"`{Path(str(source)).name}`" if source else "the training data"
        for key, iv in audit.rates.items():
            facts.append(f"Audit of {where} against the knowledge base, **{key.replace('_', ' ')}**: "
                         f"{iv.fmt(pct=True)}" + (f" over {iv.n} answers" if iv.n else "")
                         + f" (`audit/{audit.path.name}`).")
    else:
        facts.append("The training data was not audited against the knowledge base before publishing; the source "
                     "paper found factual errors in 27–29% of its synthetic training answers.")
    lines += [f"- {f}" for f in facts]
    kb = f" (knowledge base version `{opts.kb_version}`)" if opts.kb_version else ""
    lines += [
        "- Visa rules, fees, funding requirements and test score thresholds change every year. Answers may be out "
        f"of date even when they were right at training time{kb}. Always confirm with the official source "
        "(the embassy, the immigration authority, the university).",
        "- This is a small model fine-tuned on a small dataset: it can invent scholarships, deadlines and amounts "
        "with confidence. Without retrieval grounding (`sagpt serve` with `--rag`) it cannot cite sources.",
        "- Not legal or immigration advice; not a substitute for a qualified advisor.",
        "",
    ]
    return lines


def training_section(run: RunInputs, opts: CardOptions) -> list[str]:
    cfg, s, info = run.config, run.summary, run.run_info
    lora = cfg.get("lora") if isinstance(cfg.get("lora"), dict) else {}
    acfg = run.adapter_config
    rows = [
        ("base model", opts.base_model),
        ("quantization during training", cfg.get("quantization", "n/a")),
        ("LoRA rank / alpha / dropout", f"{acfg.get('r', lora.get('r'))} / {acfg.get('lora_alpha', lora.get('alpha'))}"
                                        f" / {acfg.get('lora_dropout', lora.get('dropout'))}"),
        ("target modules", ", ".join(sorted(acfg.get("target_modules") or lora.get("target_modules") or []))),
        ("learning rate", cfg.get("lr", (cfg.get("train") or {}).get("learning_rate") if isinstance(cfg.get("train"),
                                                                                                  dict) else None)),
        ("sequence length (seq_len)", s.get("seq_len", cfg.get("seq_len"))),
        ("epochs / steps", f"{s.get('epochs', cfg.get('epochs'))} / {s.get('steps')}"),
        ("seed", s.get("seed", info.get("seed", cfg.get("seed")))),
        ("stopped by", s.get("stopped_by")),
        ("device", info.get("device")),
    ]
    lines = ["## Training", "", "| setting | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in rows if v not in (None, "", "None / None", "None / None / None")]
    if s:
        def g(key: str, fmt: str = "{}") -> str:
            return fmt.format(s[key]) if s.get(key) is not None else "n/a"
        lines += ["", f"Loss {g('first_loss', '{:.3f}')} → {g('last_loss', '{:.3f}')} "
                  f"(min {g('min_loss', '{:.3f}')}, "
                  f"{g('loss_reduction_pct', '{:.1f}')}% reduction) over {g('steps')} steps and "
                  f"{g('tokens_seen', '{:,}')} tokens; {g('tokens_per_s', '{:.1f}')} tokens/s, peak memory "
                  f"{g('peak_memory_mb', '{:.0f}')} MB, wall time {g('wall_time_s', '{:.0f}')} s."]
    else:
        lines += ["", "No train_summary.json was found in the run folder: loss figures are unavailable."]
    if any(p.name == "loss.png" for p in run.files):
        lines += ["", "![training loss](training/loss.png)"]
    lines += ["", "The full recipe is in [`training/config.yaml`](training/config.yaml); per-step metrics in "
              "`training/metrics.jsonl`.", ""]
    return lines


def usage_section(opts: CardOptions) -> list[str]:
    repo = opts.repo_id or "PATH/TO/THIS/FOLDER"
    lines = ["## How to use", ""]
    if opts.merged:
        lines += ["With transformers:", "", "```python", "from transformers import AutoModelForCausalLM, AutoTokenizer",
                  "", f'model = AutoModelForCausalLM.from_pretrained("{repo}")',
                  f'tokenizer = AutoTokenizer.from_pretrained("{repo}")']
    else:
        lines += ["With transformers + PEFT (the adapter is applied on top of the base model):", "", "```python",
                  "from peft import AutoPeftModelForCausalLM", "from transformers import AutoTokenizer", "",
                  f'model = AutoPeftModelForCausalLM.from_pretrained("{repo}")',
                  f'tokenizer = AutoTokenizer.from_pretrained("{opts.base_model}")']
    lines += ['messages = [{"role": "user", "content": "Do I need a blocked account for a German student visa?"}]',
              "inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors='pt', "
              "return_dict=True)",
              "out = model.generate(**inputs, max_new_tokens=256, do_sample=False)",
              "print(tokenizer.decode(out[0, inputs['input_ids'].shape[1]:], skip_special_tokens=True))", "```", ""]
    local = "./model" if opts.repo_id else "PATH/TO/THIS/FOLDER"
    serve = f"sagpt serve --merged {local}" if opts.merged else \
        f"sagpt serve --model {opts.base_source} --adapter {local}"
    lines += ["With the StudyAbroadGPT server (retrieval grounding with citations, OpenAI-compatible API):", "",
              "```bash", "pip install studyabroadgpt"]
    if opts.repo_id:
        lines.append(f"hf download {opts.repo_id} --local-dir ./model")
    lines += [serve, "```", ""]
    if opts.gguf_files:
        lines += ["With Ollama or llama.cpp (GGUF files and a `Modelfile` with the exact chat template and stop tokens "
                  "are in `gguf/`):", "", "```bash", "cd gguf && ollama create studyabroadgpt -f Modelfile && "
                  "ollama run studyabroadgpt", f"llama-cli -m gguf/{opts.gguf_files[-1]} -cnv", "```", ""]
    else:
        lines += ["For Ollama / llama.cpp: `sagpt merge` then `sagpt export gguf` write GGUF files and a Modelfile.",
                  ""]
    return lines


def versions_section(opts: CardOptions) -> list[str]:
    v = opts.versions
    lines = ["## Versions", "", "Everything needed to reproduce or audit this artefact (also in `versions.json`):",
             "", "| item | value |", "|---|---|"]
    for key in ("toolkit", "dataset_fingerprint", "dataset", "kb_version", "config_fingerprint", "seed",
                "adapter_fingerprint", "eval_fingerprint"):
        if v.get(key) is not None:
            lines.append(f"| {key.replace('_', ' ')} | `{v[key]}` |")
    libs = v.get("library_versions") or {}
    if libs:
        lines.append("| libraries | " + ", ".join(f"{k} {x}" for k, x in libs.items()) + " |")
    return lines + [""]


CITATION = """## Citation

```bibtex
@misc{studyabroadgpt_toolkit,
  title  = {StudyAbroadGPT toolkit: grounded, evaluated study-abroad advising assistants on free hardware},
  author = {{StudyAbroadGPT contributors}},
  year   = {2026},
  note   = {Version %(toolkit)s}
}
@misc{studyabroadgpt_paper,
  title         = {%(title)s},
  author        = {%(author)s},
  eprint        = {2504.15610},
  archivePrefix = {arXiv},
  year          = {2025}
}
```
"""


def _model_link(name: str) -> str:
    return f"[`{name}`](https://huggingface.co/{name})" if name.count("/") == 1 else f"`{name}`"


def render_card(run: RunInputs, opts: CardOptions, ev: EvalInputs | None = None,
                audit: AuditInputs | None = None) -> Any:
    """Build the ``ModelCard`` (metadata + body)."""
    from huggingface_hub import ModelCard

    data = card_data(run, opts, ev)
    kind = "merged model" if opts.merged else "LoRA adapter"
    nf4 = str(run.config.get("quantization", "")).lower() == "nf4"
    method = "QLoRA: LoRA on a 4-bit NF4 base" if nf4 else "LoRA on a 16/32-bit base"
    title = opts.model_name or (opts.repo_id or run.run_dir.name)
    body = [f"# {title}", "",
            f"A study-abroad advising assistant: a {kind} for {_model_link(opts.base_model)} fine-tuned with the "
            "StudyAbroadGPT toolkit, which follows "
            f"the recipe of {PAPER} ({method}) and adds training-data audits, evaluation against the base model "
            "with confidence intervals, and retrieval grounding at serving time.", ""]
    body += headline(ev) + [""]
    body += limitations_section(ev, audit, opts)
    body += evaluation_section(ev)
    body += training_section(run, opts)
    body += usage_section(opts)
    body += versions_section(opts)
    body += [CITATION % {"toolkit": opts.versions.get("toolkit", "0.1.0"), "title": PAPER_TITLE,
                          "author": PAPER_AUTHOR}]
    content = f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(body)
    return ModelCard(content)


# ------------------------------------------------------------------------------------------------ validation


REQUIRED_METADATA = ("base_model", "library_name", "license", "language", "tags", "pipeline_tag")


def validate_card(text: str, expected: dict[str, float] | None = None) -> Any:
    """Parse a card back the way the Hub does and check our required metadata and eval numbers survive.

    Offline this is a local check with ``huggingface_hub``'s own parsers (``ModelCard`` → ``ModelCardData``,
    model-index → ``EvalResult``); ``hub.push`` additionally runs the Hub's server-side ``ModelCard.validate``.
    """
    from huggingface_hub import ModelCard

    try:
        card = ModelCard(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise PublishError(f"model card metadata does not parse: {exc}") from exc
    data = card.data
    missing = [k for k in REQUIRED_METADATA if not getattr(data, k, None)]
    if missing:
        raise PublishError(f"model card is missing required metadata: {', '.join(missing)}")
    if data.pipeline_tag != "text-generation":
        raise PublishError(f"pipeline_tag is {data.pipeline_tag!r}, expected 'text-generation'")
    got = {r.metric_type: r.metric_value for r in data.eval_results or []}
    for metric, value in (expected or {}).items():
        if metric not in got or abs(float(got[metric]) - value) > 1e-4:
            raise PublishError(f"model-index lost {metric}: expected {value}, card has {got.get(metric)}")
    return card


def expected_results(ev: EvalInputs | None) -> dict[str, float]:
    """The numbers the model-index must carry: every metric of the published system, rounded as written."""
    if ev is None:
        return {}
    out = {}
    for metric, by_system in (ev.summary.get("metrics") or {}).items():
        iv = to_interval((by_system or {}).get(ev.ours))
        if iv is not None:
            out[metric] = round(iv.mean, 4)
    return out
