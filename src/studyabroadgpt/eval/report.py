"""``eval report``: summary.json (the machine-readable result the model card is filled from), report.md and a
self-contained report.html (plots embedded as base64 PNG), all in the eval output directory.

It only reads what the other steps wrote there: ``scores.json`` / ``scores.jsonl`` (score), ``judge.json``
(judge, optional), ``generation.json`` and the outputs file (generate, optional).
"""
from __future__ import annotations

import base64
import html
import json
import math
import re
from pathlib import Path
from typing import Any

from ..data.io import DataError
from ..utils import atomic_write_json, atomic_write_text
from . import plots
from .metrics import METRICS


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def build_summary(eval_dir: str | Path) -> dict[str, Any]:
    eval_dir = Path(eval_dir)
    scores = _read_json(eval_dir / "scores.json")
    if scores is None:
        raise DataError(f"{eval_dir}: no scores.json; run `eval score` first")
    strip = lambda d: {k: d[k] for k in ("mean", "ci_low", "ci_high")}  # noqa: E731
    summary = {
        "systems": scores["systems"],
        "baseline": scores["baseline"],
        "n_items": scores["n_items"],
        "metrics": {m: {s: strip(v) for s, v in by.items()} for m, by in scores["metrics"].items()},
        "comparisons": [{k: c[k] for k in ("metric", "a", "b", "diff", "ci_low", "ci_high", "verdict")}
                        for c in scores["comparisons"]],
        "judge": _read_json(eval_dir / "judge.json"),
        "generation": {s: {k: g[k] for k in ("samples_per_s", "tokens_per_s", "truncation_rate")}
                       for s, g in (_read_json(eval_dir / "generation.json") or {}).items()},
        "unavailable": scores.get("unavailable", {}),
        "lengths": scores.get("lengths", {}),
        "bertscore_model": scores.get("bertscore_model"),
        "bootstrap": scores.get("bootstrap"),
        "references": scores.get("references"),
        "prompts": scores.get("prompts"),
    }
    atomic_write_json(eval_dir / "summary.json", _finite(summary))
    return summary


def _finite(obj: Any) -> Any:
    """NaN is not JSON: write null instead so every consumer can parse summary.json."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj


def write_report(eval_dir: str | Path, run_dir: str | Path | None = None,
                 outputs: str | Path | None = None) -> dict[str, Path]:
    eval_dir = Path(eval_dir)
    summary = build_summary(eval_dir)
    figures = _figures(eval_dir, summary, run_dir, outputs)
    md = _markdown(summary, figures, run_dir)
    md_path = atomic_write_text(eval_dir / "report.md", md)
    html_path = atomic_write_text(eval_dir / "report.html", _html(md, eval_dir))
    return {"summary": eval_dir / "summary.json", "markdown": md_path, "html": html_path, **figures}


def _figures(eval_dir: Path, summary: dict, run_dir, outputs) -> dict[str, Path]:
    figs: dict[str, Path | None] = {
        "metrics": plots.metric_bars(summary, eval_dir / "metrics.png"),
        "judge": plots.judge_bar(summary.get("judge"), eval_dir / "judge.png"),
    }
    per_item = _per_item(eval_dir / "scores.jsonl")
    if per_item:
        figs["lengths"] = plots.histograms(per_item.get("length_words", {}), "answer length (words)",
                                           "Answer length", eval_dir / "lengths.png")
    latencies = _latencies(outputs or eval_dir / "outputs.jsonl")
    if latencies:
        figs["latency"] = plots.histograms(latencies, "latency per answer (s)", "Generation latency",
                                           eval_dir / "latency.png")
    if run_dir:
        if not Path(run_dir).is_dir():
            raise DataError(f"{run_dir}: training run directory not found")
        figs["loss"] = plots.loss_curve(Path(run_dir), eval_dir / "loss.png")
    return {k: v for k, v in figs.items() if v is not None}


def _per_item(path: Path) -> dict[str, dict[str, list]]:
    if not path.exists():
        return {}
    out: dict[str, dict[str, list]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        for k, v in row.items():
            if k in METRICS:
                out.setdefault(k, {}).setdefault(row["system"], []).append(v)
    return out


def _latencies(path: str | Path) -> dict[str, list[float]]:
    path = Path(path)
    if not path.exists():
        return {}
    from .outputs import read_outputs

    try:
        systems = read_outputs([path], allow_empty=True)
    except DataError:
        return {}
    return {s: [a.latency_s for a in ans if a.latency_s is not None] for s, ans in systems.items()}


# --------------------------------------------------------------------------------------------- markdown


def _fmt(x: Any, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def _metric_rows(s: dict[str, Any], names: list[str]) -> list[str]:
    systems = s["systems"]
    verdicts = {(c["metric"], c["b"]): c["verdict"] for c in s["comparisons"] if c["a"] == s["baseline"]}
    lines = ["| metric | " + " | ".join(systems) + " |", "|---|" + "---|" * len(systems)]
    for m in names:
        by = s["metrics"][m]
        cells = []
        for x in systems:
            cell = f"{_fmt(by[x]['mean'])} [{_fmt(by[x]['ci_low'])}, {_fmt(by[x]['ci_high'])}]"
            if (m, x) in verdicts:
                cell += f" **{verdicts[(m, x)]}**"
            cells.append(cell)
        lines.append(f"| {METRICS[m].label} | " + " | ".join(cells) + " |")
    return lines


def _markdown(s: dict[str, Any], figures: dict[str, Path], run_dir) -> str:
    systems, base = s["systems"], s["baseline"]
    lines = [f"# Evaluation report: {' vs '.join(systems)}", "",
             f"{s['n_items']} items" + (f" from `{s['prompts']}`" if s.get("prompts") else "") +
             f" · baseline **{base}** · paired bootstrap 95% CIs "
             f"({(s.get('bootstrap') or {}).get('n_resamples', 1000)} resamples, seed "
             f"{(s.get('bootstrap') or {}).get('seed', 0)}) · BERTScore encoder `{s.get('bertscore_model')}`", ""]
    student = [m for m in s["metrics"] if METRICS[m].group == "student"]
    lines += ["## What a student reads", "",
              "Each cell: mean [95% CI]; the verdict against the baseline (**better** / **worse** only when the CI of "
              "the paired difference excludes zero). Rates on a category (out-of-scope, false premise, expected "
              "facts) count only the prompts of that category.", ""]
    lines += _metric_rows(s, student) if student else ["No student-facing metric could be computed."]
    extra = [c for c in s["comparisons"] if c["a"] != base and c["metric"] in student]
    if extra:
        lines += ["", "Other pairs (paired difference b − a, 95% CI, verdict for b):", "",
                  "| metric | b − a | difference | 95% CI | verdict |", "|---|---|---|---|---|"]
        lines += [f"| {METRICS[c['metric']].label} | {c['b']} − {c['a']} | {_fmt(c['diff'])} | "
                  f"[{_fmt(c['ci_low'])}, {_fmt(c['ci_high'])}] | **{c['verdict']}** |" for c in extra]
    judge = s.get("judge")
    if judge and judge.get("n_judged_items"):
        lines += ["", f"Blind judge (`{judge['judge']}`), {judge['b']} vs {judge['a']}: win "
                  f"{_fmt(judge['rates']['win']['rate'], 2)} / tie {_fmt(judge['rates']['tie']['rate'], 2)} / loss "
                  f"{_fmt(judge['rates']['loss']['rate'], 2)} — **{_judge_verdict(judge)}**; rubric details below."]
    refs = s.get("references") or {}
    ref_metrics = [m for m in s["metrics"] if METRICS[m].group == "reference"]
    if ref_metrics:
        lines += ["", "## Agreement with reference answers", ""]
        if refs.get("from_kb"):
            lines += ["> **These references were written from the same knowledge base the grounded system retrieves "
                      "from** (template answers). A grounded answer that copies retrieved facts scores well against "
                      "them by construction, so these figures do not show that students are better served; read "
                      "the metrics above first.", ""]
        lines += _metric_rows(s, ref_metrics)
    lines += ["", "## Verdicts", "",
              "A verdict is *better* / *worse* only when the 95% CI of the paired difference excludes zero; "
              "descriptive metrics (length, formatting, abstention) read *higher* / *lower*.", "",
              "| metric | comparison | difference | 95% CI | verdict |", "|---|---|---|---|---|"]
    for c in s["comparisons"]:
        lines.append(f"| {METRICS[c['metric']].label} | {c['b']} − {c['a']} | {_fmt(c['diff'])} | "
                     f"[{_fmt(c['ci_low'])}, {_fmt(c['ci_high'])}] | **{c['verdict']}** |")
    judge = s.get("judge")
    if judge and judge.get("n_judged_items"):
        r = judge["rates"]
        lines.append(f"| Blind judge preference | {judge['b']} vs {judge['a']} | win {_fmt(r['win']['rate'], 2)} / "
                     f"loss {_fmt(r['loss']['rate'], 2)} | p={_fmt(judge['sign_tests']['preference']['p_value'])} "
                     f"(sign test) | **{_judge_verdict(judge)}** |")
    others = [m for m in s["metrics"] if METRICS[m].group not in ("student", "reference")]
    lines += ["", "## Audit, formatting and length per system", ""] + _metric_rows(s, others)
    if s.get("unavailable"):
        lines += ["", "**Not computed** (reported as unavailable, not as zero):", ""]
        lines += [f"- {METRICS[m].label} (`{m}`): {why}" for m, why in s["unavailable"].items()]
    if "metrics" in figures:
        lines += ["", "![metric bars](metrics.png)"]
    lines += _judge_md(judge, figures)
    lines += ["", "## Generation", ""]
    if s.get("generation"):
        lines += ["| system | samples/s | tokens/s | truncated |", "|---|---|---|---|"]
        for name, g in s["generation"].items():
            lines.append(f"| {name} | {_fmt(g['samples_per_s'], 2)} | {_fmt(g['tokens_per_s'], 1)} | "
                         f"{_fmt(g['truncation_rate'], 2)} |")
    else:
        lines.append("No generation timings (answers were scored from an existing outputs file).")
    if s.get("lengths"):
        lines += ["", "| system | mean words | median | p10 | p90 | max |", "|---|---|---|---|---|---|"]
        for name, ln in s["lengths"].items():
            lines.append(f"| {name} | {ln['mean_words']:.1f} | {ln['median_words']:.0f} | {ln['p10_words']:.0f} | "
                         f"{ln['p90_words']:.0f} | {ln['max_words']:.0f} |")
    for key, alt in (("lengths", "length histogram"), ("latency", "latency histogram")):
        if key in figures:
            lines += ["", f"![{alt}]({figures[key].name})"]
    if run_dir:
        lines += ["", "## Training run", "", f"Run directory: `{run_dir}`"]
        train_summary = _read_json(Path(run_dir) / "train_summary.json")
        if isinstance(train_summary, dict):
            lines += ["", "| key | value |", "|---|---|"]
            lines += [f"| {k} | {_fmt(v) if not isinstance(v, (dict, list)) else json.dumps(v)[:80]} |"
                      for k, v in list(train_summary.items())[:20]]
        lines += ["", "![loss curve](loss.png)"] if "loss" in figures else ["", "No metrics.jsonl in the run dir."]
    return "\n".join(lines) + "\n"


def _judge_verdict(judge: dict) -> str:
    p = judge["sign_tests"]["preference"]["p_value"]
    if p >= 0.05:
        return "not distinguishable"
    return "better" if judge["counts"]["win"] > judge["counts"]["loss"] else "worse"


def _judge_md(judge: dict | None, figures: dict) -> list[str]:
    lines = ["", "## Blind pairwise judge", ""]
    if not judge:
        return lines + ["Not run (no judge configured)."]
    a, b = judge["a"], judge["b"]
    lines += [f"Judge `{judge['judge']}`; {judge['n_items']} items, {judge['n_judgements']} judgements "
              f"({'both A/B orders' if judge['both_orders'] else 'one random order'}); "
              f"unparseable: {judge['unparseable_judgements']} judgements, {judge['unparseable_items']} items.", "",
              "| outcome | items | share | 95% Wilson CI |", "|---|---|---|---|"]
    for k, label in (("win", f"{b} preferred"), ("tie", "tie"), ("loss", f"{a} preferred")):
        r = judge["rates"][k]
        lines.append(f"| {label} | {judge['counts'][k]} | {_fmt(r['rate'], 2)} | "
                     f"[{_fmt(r['ci_low'], 2)}, {_fmt(r['ci_high'], 2)}] |")
    fr = judge.get("flag_rates") or {}
    if any(fr.values()):
        from .judge import FLAGS

        lines += ["", "What the judge flagged (share of items, 95% Wilson CI; lower is better):", "",
                  "| flag | " + " | ".join(fr) + " |", "|---|" + "---|" * len(fr)]
        for flag in FLAGS:
            cells = [f"{_fmt(r[flag]['rate'], 2)} [{_fmt(r[flag]['ci_low'], 2)}, {_fmt(r[flag]['ci_high'], 2)}]"
                     if flag in r else "–" for r in fr.values()]
            lines.append(f"| {flag.replace('_', ' ')} | " + " | ".join(cells) + " |")
    ms = judge["mean_scores"]
    lines += ["", f"Mean rubric scores — {a}: accuracy {_fmt(ms[a]['accuracy'], 2)}, helpfulness "
              f"{_fmt(ms[a]['helpfulness'], 2)}; {b}: accuracy {_fmt(ms[b]['accuracy'], 2)}, helpfulness "
              f"{_fmt(ms[b]['helpfulness'], 2)}.", ""]
    st = judge["sign_tests"]
    lines.append(f"Sign tests ({b} vs {a}): accuracy {st['accuracy']['b_higher']}↑/{st['accuracy']['a_higher']}↓ "
                 f"p={_fmt(st['accuracy']['p_value'])}; helpfulness {st['helpfulness']['b_higher']}↑/"
                 f"{st['helpfulness']['a_higher']}↓ p={_fmt(st['helpfulness']['p_value'])}.")
    if judge.get("bowker"):
        bw = judge["bowker"]
        lines += ["", f"McNemar–Bowker on the 3-way preference: χ²({bw['df']}) = {bw['chi2']:.2f}, "
                  f"p = {_fmt(bw['p_value'], 4)}. Rows: {bw['rows']}; columns: {bw['columns']}; cell (A, B) = "
                  f"{a} won both orders, (B, A) = {b} won both.", "", "| | A | B | tie |", "|---|---|---|---|"]
        for name, row in zip(("A", "B", "tie"), bw["table"]):
            lines.append(f"| **{name}** | " + " | ".join(str(x) for x in row) + " |")
    else:
        lines += ["", "McNemar–Bowker needs both A/B orders (set `judge.both_orders: true`)."]
    pb = judge["position_bias"]
    lines += ["", f"Position bias: the judge chose position A in {pb['chose_A']} and B in {pb['chose_B']} non-tie "
              f"judgements (share A {_fmt(pb['share_A'], 2)}, p={_fmt(pb['p_value'])})"
              + (f"; verdicts agreed across orders on {_fmt(pb['consistency'], 2)} of items." if pb.get("consistency")
                 is not None else ".")]
    if "judge" in figures:
        lines += ["", "![judge](judge.png)"]
    return lines


def _html(md: str, eval_dir: Path) -> str:
    import markdown

    body = markdown.markdown(md, extensions=["tables"])

    def inline(m: re.Match) -> str:
        img = eval_dir / html.unescape(m.group(1))
        if not img.exists():
            return m.group(0)
        return f'src="data:image/png;base64,{base64.b64encode(img.read_bytes()).decode("ascii")}"'

    body = re.sub(r'src="([^"]+\.png)"', inline, body)
    style = ("body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;"
             "font-size:14px}th{background:#f4f4f4}img{max-width:100%}code{background:#f4f4f4;padding:1px 3px}")
    return (f"<!doctype html>\n<html><head><meta charset='utf-8'><title>StudyAbroadGPT evaluation</title>"
            f"<style>{style}</style></head><body>\n{body}\n</body></html>\n")
