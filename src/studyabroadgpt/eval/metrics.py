"""Per-item metric values for every system, plus what could not be computed and why.

Each metric is a column of per-item values (``None`` where it does not apply to an item, e.g. the caveat rate
outside policy-sensitive prompts) except corpus BLEU, which SacreBLEU defines over the whole corpus: for it we
keep each item's n-gram sufficient statistics so the bootstrap can resample items and recompute corpus BLEU.
"""
from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from typing import Any, Literal, Sequence

import numpy as np

from .outputs import Answer
from .student import STUDENT_METRICS, student_columns
from .textchecks import has_markdown, is_abstention, word_count

log = logging.getLogger(__name__)

Direction = Literal["higher", "lower", "neutral"]


@dataclass(frozen=True)
class MetricSpec:
    label: str
    direction: Direction  # which way is better; "neutral" metrics are described, not judged
    corpus: bool = False
    group: str = "other"  # "student" metrics lead the report; "reference" ones need reference answers


def _group(group: str, rows: Sequence[tuple[str, Direction, str]]) -> dict[str, MetricSpec]:
    return {name: MetricSpec(label, direction, group=group) for name, direction, label in rows}


# The order here is the order of every report table and plot.
METRICS: dict[str, MetricSpec] = {
    # what a student reads (eval/student.py, on the answer path's own detectors in serve/checks.py)
    **_group("student", [
        ("looping_rate", "lower", "Looping answers (repeated lines / sentences / phrases)"),
        ("distinct_2", "higher", "Distinct word bigrams within the answer (distinct-2)"),
        ("foreign_url_rate", "lower", "Answers with a URL outside the knowledge base"),
        ("unverified_entity_rate", "lower", "Answers naming an unverified organisation / scheme / test"),
        ("off_topic_citation_rate", "lower", "Answers citing an off-topic source (of those citing)"),
        ("honest_out_of_scope_rate", "higher", "Out-of-scope prompts answered honestly (no info + official pointer)"),
        ("premise_corrected_rate", "higher", "False-premise prompts whose premise is challenged (heuristic)"),
        ("expected_fact_rate", "higher", "Prompts answered with an expected KB fact (checks.expect_facts)"),
        ("right_destination_rate", "higher", "Answers using no other destination's facts (checks.destination)"),
        ("expect_pass_rate", "higher", "Answers passing all of their prompt's machine checks"),
    ]),
    # against reference answers; SacreBLEU is defined over the whole corpus, not per item
    "bleu": MetricSpec("SacreBLEU (corpus)", "higher", corpus=True, group="reference"),
    **_group("reference", [
        ("rougeL_f1", "higher", "ROUGE-L F1"),
        ("bertscore_f1", "higher", "BERTScore F1"),
    ]),
    **_group("other", [
        ("audit_error_rate", "lower", "Answers with a contradicted or unsupported claim"),
        ("audit_contradicted_rate", "lower", "Answers contradicting the knowledge base"),
        ("audit_unsupported_rate", "lower", "Answers with unsupported specific claims"),
        ("scaffolding_rate", "lower", "Template scaffolding left in the answer"),
        ("caveat_rate_policy", "higher", "Official-source caveat on policy-sensitive prompts"),
        ("abstention_rate", "neutral", "Abstention rate"),
        ("markdown_rate", "neutral", "Markdown formatting rate"),
        ("truncation_rate", "lower", "Truncated at max_new_tokens"),
        ("model_answer_rate", "neutral", "Grounded answers written by the model (not composed / out-of-scope)"),
        ("length_words", "neutral", "Answer length (words)"),
        ("new_tokens", "neutral", "New tokens"),
    ]),
}


@dataclass
class ItemScores:
    """values[metric][system] = per-item list (aligned with ``ids``); bleu_stats[system] = [n_items, 10]."""

    ids: list[str]
    values: dict[str, dict[str, list[float | None]]] = field(default_factory=dict)
    bleu_stats: dict[str, np.ndarray] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)
    audits: dict[str, list[dict | None]] = field(default_factory=dict)

    def rows(self) -> list[dict[str, Any]]:
        """Long format for ``scores.jsonl``: one row per (system, item)."""
        systems = next(iter(self.values.values())).keys() if self.values else []
        out = []
        for system in systems:
            for k, item_id in enumerate(self.ids):
                row: dict[str, Any] = {"id": item_id, "system": system}
                for metric, by_sys in self.values.items():
                    row[metric] = by_sys[system][k]
                if system in self.audits and self.audits[system][k] is not None:
                    row["audit"] = self.audits[system][k]
                out.append(row)
        return out


def compute_item_scores(ids: Sequence[str], answers: dict[str, list[Answer]], bertscore_model: str | None = None,
                        bertscore_layer: int | None = None, use_audit: bool = True) -> ItemScores:
    """Score aligned answers (``answers[system][k]`` answers item ``ids[k]``)."""
    scores = ItemScores(ids=list(ids))
    systems = list(answers)
    first = answers[systems[0]]
    references = [a.reference for a in first]
    with_ref = [k for k, r in enumerate(references) if r]
    scores.values.update({m: {} for m in STUDENT_METRICS})  # placeholders: student metrics lead every table

    if with_ref:
        # Mixed sets (the real-style prompts have no references, a held-out split does): reference metrics
        # are computed on the items that have one and are None elsewhere.
        _reference_metrics(scores, answers, references, with_ref, bertscore_model, bertscore_layer)
    else:
        reason = f"no reference answer for any of the {len(references)} items"
        for m in ("bleu", "rougeL_f1", "bertscore_f1"):
            scores.unavailable[m] = reason

    _audit_metrics(scores, answers, enabled=use_audit)
    _student_metrics(scores, answers)

    for system, ans in answers.items():
        scores.values.setdefault("abstention_rate", {})[system] = [float(is_abstention(a.response)) for a in ans]
        scores.values.setdefault("markdown_rate", {})[system] = [float(has_markdown(a.response)) for a in ans]
        scores.values.setdefault("length_words", {})[system] = [float(word_count(a.response)) for a in ans]
    _optional_column(scores, answers, "truncation_rate", lambda a: None if a.truncated is None else float(a.truncated))
    _optional_column(scores, answers, "new_tokens", lambda a: None if a.new_tokens is None else float(a.new_tokens))
    _optional_column(scores, answers, "model_answer_rate",
                     lambda a: None if a.mode is None else float(a.mode == "generate"))
    return scores


def _student_metrics(scores: ItemScores, answers: dict[str, list[Answer]]) -> None:
    from ..kb.audit import Auditor

    values, unavailable = student_columns(answers, Auditor.default().kb, scores.audits or None)
    for m in STUDENT_METRICS:
        if m in values:
            scores.values[m] = values[m]
        else:
            del scores.values[m]
    scores.unavailable.update(unavailable)


def _optional_column(scores: ItemScores, answers: dict[str, list[Answer]], metric: str, get) -> None:
    cols = {s: [get(a) for a in ans] for s, ans in answers.items()}
    if all(v is None for col in cols.values() for v in col):
        scores.unavailable[metric] = "the outputs file has no such column"
        return
    scores.values[metric] = cols


def _reference_metrics(scores: ItemScores, answers: dict[str, list[Answer]], references: list[str | None],
                       with_ref: list[int], bertscore_model: str | None, bertscore_layer: int | None) -> None:
    from rouge_score import rouge_scorer
    from sacrebleu.metrics import BLEU

    bleu = BLEU()
    rouge = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    bert = _bert_scorer(bertscore_model, bertscore_layer)
    refs = [references[k] for k in with_ref]
    n = len(references)
    for system, ans in answers.items():
        hyps = [ans[k].response for k in with_ref]
        # Per-item sufficient statistics: summing rows of any resample gives that resample's corpus BLEU.
        scores.bleu_stats[system] = np.asarray(bleu._extract_corpus_statistics(hyps, [refs]), dtype=float)
        rouge_vals = [rouge.score(ref, hyp)["rougeL"].fmeasure for hyp, ref in zip(hyps, refs)]
        bert_vals = bert.f1(hyps, refs)
        for metric, vals in (("rougeL_f1", rouge_vals), ("bertscore_f1", bert_vals)):
            col: list[float | None] = [None] * n
            for k, v in zip(with_ref, vals):
                col[k] = v
            scores.values.setdefault(metric, {})[system] = col
    scores.values["bleu"] = {s: [None] * n for s in answers}  # corpus metric: see bleu_stats


@functools.lru_cache(maxsize=2)
def _bert_scorer(model: str | None, layer: int | None):
    """Encoders are reused across calls in one process (a notebook or test session scores many times)."""
    from .bertscore import BERTScorer

    return BERTScorer(model, layer=layer)


def corpus_bleu(stats: np.ndarray, idx: np.ndarray | None = None) -> float:
    from sacrebleu.metrics import BLEU

    rows = stats if idx is None else stats[idx]
    return float(BLEU()._compute_score_from_stats([float(x) for x in rows.sum(axis=0)]).score)


def _audit_metrics(scores: ItemScores, answers: dict[str, list[Answer]], enabled: bool) -> None:
    names = ("audit_error_rate", "audit_contradicted_rate", "audit_unsupported_rate", "scaffolding_rate",
             "caveat_rate_policy")
    if not enabled:
        for m in names:
            scores.unavailable[m] = "audit disabled (score.audit: false)"
        return
    try:
        from ..kb.audit import Auditor, has_caveat, is_policy_sensitive
    except ImportError as exc:
        for m in names:
            scores.unavailable[m] = f"claim audit not available (studyabroadgpt.kb.audit: {exc})"
        return
    auditor = Auditor.default()
    for system, ans in answers.items():
        results = [auditor.audit_answer(a.response, a.prompt) for a in ans]
        scores.audits[system] = [r.to_dict() for r in results]
        scores.values.setdefault("audit_error_rate", {})[system] = [float(r.has_error) for r in results]
        scores.values.setdefault("audit_contradicted_rate", {})[system] = [float(bool(r.contradicted))
                                                                           for r in results]
        scores.values.setdefault("audit_unsupported_rate", {})[system] = [float(bool(r.unsupported))
                                                                          for r in results]
        scores.values.setdefault("scaffolding_rate", {})[system] = [float(bool(r.scaffolding)) for r in results]
    # Sensitivity is decided on the prompt alone so both systems are compared on the same subset of items.
    sensitive = [bool(is_policy_sensitive(a.prompt)) for a in next(iter(answers.values()))]
    if not any(sensitive):
        scores.unavailable["caveat_rate_policy"] = "no policy-sensitive prompts in this set"
        return
    for system, ans in answers.items():
        scores.values.setdefault("caveat_rate_policy", {})[system] = [
            float(bool(has_caveat(a.response))) if s else None for a, s in zip(ans, sensitive)]
