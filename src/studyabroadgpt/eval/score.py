"""``eval score``: metric means with bootstrap CIs per system and paired differences against the baseline.

Every comparison is paired (same items, same resampled indices for both systems), 1,000 seeded resamples by
default; the verdict reads "better" / "worse" only when the 95% CI of the difference excludes zero, with the
metric's direction taken into account (fewer audit errors is better), and "higher" / "lower" for metrics that
describe rather than judge (length, formatting, abstention).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .. import significance as stats
from ..data.io import DataError
from ..utils import atomic_write_json, atomic_write_jsonl
from .metrics import METRICS, ItemScores, compute_item_scores, corpus_bleu
from .outputs import Answer, align, read_outputs

NUMERICAL_ZERO = 1e-9


def score_answers(answers: dict[str, list[Answer]], baseline: str | None = None, n_resamples: int = 1000,
                  seed: int = 0, bertscore_model: str | None = None, bertscore_layer: int | None = None,
                  use_audit: bool = True, references_from_kb: bool = False,
                  prompts_label: str | None = None,
                  pairs: Sequence[Sequence[str]] = ()) -> tuple[dict[str, Any], ItemScores]:
    """Score aligned answers. ``references_from_kb`` records that the references were written from the KB the
    grounded system retrieves from (the report then says so next to BLEU/ROUGE/BERTScore); ``prompts_label``
    names the prompt set, for the report."""
    ids, aligned = align(answers)
    systems = list(aligned)
    baseline = baseline or systems[0]
    if baseline not in aligned:
        raise DataError(f"baseline system {baseline!r} not among the systems {systems}")
    items = compute_item_scores(ids, aligned, bertscore_model, bertscore_layer, use_audit=use_audit)
    result = {
        "systems": systems,
        "baseline": baseline,
        "n_items": len(ids),
        "metrics": _metric_cis(items, n_resamples, seed),
        "comparisons": _comparisons(items, baseline, n_resamples, seed, _pairs(systems, baseline, pairs)),
        "unavailable": items.unavailable,
        "lengths": _length_stats(items),
        "bertscore_model": bertscore_model or "all-MiniLM-L6-v2",
        "bootstrap": {"n_resamples": n_resamples, "seed": seed, "confidence": 0.95},
        "references": {"from_kb": bool(references_from_kb)},
        "prompts": prompts_label,
    }
    return result, items


def score_files(paths: Sequence[str | Path], out_dir: str | Path, allow_empty: bool = False,
                prompts: str | Path | None = None, **kwargs) -> dict:
    """Score outputs files; ``prompts`` (a prompt set with category / checks, e.g. the real-style set) fills
    in those columns by id for answers that lack them, so a file produced elsewhere gets the category metrics."""
    answers = read_outputs(paths, allow_empty=allow_empty)
    if prompts is not None:
        attach_prompt_meta(answers, prompts)
        kwargs.setdefault("prompts_label", str(prompts))
    result, items = score_answers(answers, **kwargs)
    out_dir = Path(out_dir)
    atomic_write_jsonl(out_dir / "scores.jsonl", items.rows())
    atomic_write_json(out_dir / "scores.json", result)
    return result


def _metric_cis(items: ItemScores, n_resamples: int, seed: int) -> dict[str, dict[str, dict[str, float]]]:
    out: dict[str, dict[str, dict[str, float]]] = {}
    for metric, by_sys in items.values.items():
        out[metric] = {}
        for system, vals in by_sys.items():
            if METRICS[metric].corpus:
                st = items.bleu_stats[system]
                mean, lo, hi = stats.bootstrap_statistic_ci(lambda idx, st=st: corpus_bleu(st, idx), len(st),
                                                            n_resamples=n_resamples, seed=seed)
                n = len(st)
            else:
                present = [v for v in vals if v is not None]
                mean, lo, hi = stats.bootstrap_mean_ci(present, n_resamples=n_resamples, seed=seed)
                n = len(present)
            out[metric][system] = {"mean": mean, "ci_low": lo, "ci_high": hi, "n": n}
    return out


def _pairs(systems: list[str], baseline: str, extra: Sequence[Sequence[str]]) -> list[tuple[str, str]]:
    """Baseline vs every other system, then the requested extra pairs (e.g. base+rag vs tuned+rag)."""
    out = [(baseline, s) for s in systems if s != baseline]
    for pair in extra:
        a, b = pair
        for name in (a, b):
            if name not in systems:
                raise DataError(f"comparison {a!r} vs {b!r}: {name!r} not among the systems {systems}")
        if (a, b) not in out and a != b:
            out.append((a, b))
    return out


def _comparisons(items: ItemScores, baseline: str, n_resamples: int, seed: int,
                 pairs: list[tuple[str, str]] | None = None) -> list[dict[str, Any]]:
    out = []
    for metric, by_sys in items.values.items():
        spec = METRICS[metric]
        for a_name, other in pairs or [(baseline, s) for s in by_sys if s != baseline]:
            if spec.corpus:
                sa, sb = items.bleu_stats[a_name], items.bleu_stats[other]
                res = stats.paired_bootstrap_statistic(lambda idx: corpus_bleu(sa, idx),
                                                       lambda idx: corpus_bleu(sb, idx), len(sa),
                                                       n_resamples=n_resamples, seed=seed)
            else:
                both = [(a, b) for a, b in zip(by_sys[a_name], by_sys[other]) if a is not None and b is not None]
                if not both:
                    continue
                res = stats.paired_bootstrap_diff([p[0] for p in both], [p[1] for p in both],
                                                  n_resamples=n_resamples, seed=seed)
            raw = res["verdict"]
            if max(abs(res["ci_low"]), abs(res["ci_high"])) < NUMERICAL_ZERO:
                raw = "not distinguishable"  # e.g. smoothed BLEU of 1e-13 vs 0: float noise, not a difference
            out.append({"metric": metric, "a": a_name, "b": other, "diff": res["diff"], "ci_low": res["ci_low"],
                        "ci_high": res["ci_high"], "verdict": _verdict(raw, spec.direction),
                        "n": res["n"]})
    return out


def _verdict(raw: str, direction: str) -> str:
    """stats' verdict says whether b - a > 0; turn it into better/worse for this metric's direction."""
    if raw == "not distinguishable":
        return raw
    if direction == "neutral":
        return "higher" if raw == "better" else "lower"
    if direction == "lower":
        return "worse" if raw == "better" else "better"
    return raw


def _length_stats(items: ItemScores) -> dict[str, dict[str, float]]:
    out = {}
    for system, vals in items.values.get("length_words", {}).items():
        arr = np.asarray(vals, dtype=float)
        out[system] = {"mean_words": float(arr.mean()), "median_words": float(np.median(arr)),
                       "p10_words": float(np.quantile(arr, 0.1)), "p90_words": float(np.quantile(arr, 0.9)),
                       "max_words": float(arr.max())}
    return out


def attach_prompt_meta(answers: dict[str, list[Answer]], prompts: str | Path) -> int:
    """Copy ``category`` / ``checks`` from the prompt set onto answers with the same id; returns how many."""
    from .items import load_items

    meta = {it.id: it for it in load_items(prompts)}
    n = 0
    for ans in answers.values():
        for a in ans:
            it = meta.get(a.id)
            if it is not None:
                a.category = a.category or it.category
                a.checks = a.checks or it.checks
                n += 1
    if not n:
        raise DataError(f"{prompts}: no id in common with the outputs file(s); --prompts must be the prompt set the "
                        "answers were generated from")
    return n
