"""Tolerant readers for what a model card is built from: the training run, the eval, the audit, the KB.

Only the adapter is required. Every other artefact may be missing (no eval yet, no audit) or come from an older
version of a stage with fewer keys; the card then says "not evaluated" instead of the publisher crashing or,
worse, inventing a number. Malformed JSON is an error naming the file, because a card built from a file we could
not read would silently drop results.
"""
from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import PublishError

log = logging.getLogger(__name__)

RUN_FILES = ("config.yaml", "run_info.json", "train_summary.json", "metrics.jsonl", "loss.png")
EVAL_FILES = ("summary.json", "report.md", "report.html", "metrics.png", "judge.png")


def read_json(path: Path) -> Any:
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise PublishError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from exc


def _num(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or math.isnan(x) or math.isinf(x):
        return None
    return float(x)


@dataclass
class Interval:
    """A rate or mean with its 95% CI (either bound may be unknown)."""
    mean: float
    ci_low: float | None = None
    ci_high: float | None = None
    n: int | None = None

    def fmt(self, digits: int = 3, pct: bool = False) -> str:
        f = (lambda v: f"{100 * v:.1f}%") if pct else (lambda v: f"{v:.{digits}f}")
        ci = f" (95% CI {f(self.ci_low)}–{f(self.ci_high)})" if self.ci_low is not None and self.ci_high is not None \
            else ""
        return f"{f(self.mean)}{ci}"


def to_interval(value: Any) -> Interval | None:
    """Accept 0.27, {"mean"|"rate": .27, "ci_low", "ci_high"}, or {"count": 11, "n": 40} (Wilson CI)."""
    if _num(value) is not None:
        return Interval(float(value))
    if not isinstance(value, dict):
        return None
    mean = _num(value.get("mean", value.get("rate")))
    lo, hi = _num(value.get("ci_low")), _num(value.get("ci_high"))
    count, n = value.get("count", value.get("k")), value.get("n", value.get("total"))
    if isinstance(count, int) and isinstance(n, int) and n > 0:
        from ..significance import wilson_interval

        if mean is None:
            mean = count / n
        if lo is None or hi is None:
            lo, hi = wilson_interval(count, n)
    if mean is None:
        return None
    return Interval(mean, lo, hi, n if isinstance(n, int) else None)


# ------------------------------------------------------------------------------------------------- training run


@dataclass
class RunInputs:
    run_dir: Path
    adapter_dir: Path
    adapter_config: dict[str, Any]
    config: dict[str, Any] = field(default_factory=dict)
    config_text: str = ""
    run_info: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    n_metric_rows: int = 0
    files: list[Path] = field(default_factory=list)  # run artefacts that exist, copied into training/
    missing: list[str] = field(default_factory=list)


def read_run(run_dir: str | Path) -> RunInputs:
    import yaml

    from .merge import read_adapter_config

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise PublishError(f"{run_dir}: no such run directory")
    adapter = run_dir / "adapter"
    if not adapter.is_dir():
        raise PublishError(f"{run_dir}: no adapter/ inside; is this a finished training run?")
    run = RunInputs(run_dir, adapter, read_adapter_config(adapter))
    for name in RUN_FILES:
        (run.files if (run_dir / name).exists() else run.missing).append(run_dir / name if (run_dir / name).exists()
                                                                          else name)
    if (run_dir / "config.yaml").exists():
        run.config_text = (run_dir / "config.yaml").read_text()
        try:
            run.config = yaml.safe_load(run.config_text) or {}
        except yaml.YAMLError as exc:
            raise PublishError(f"{run_dir / 'config.yaml'}: invalid YAML ({exc})") from exc
    run.run_info = read_json(run_dir / "run_info.json") or {}
    run.summary = read_json(run_dir / "train_summary.json") or {}
    if (run_dir / "metrics.jsonl").exists():
        run.n_metric_rows = sum(1 for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip())
    return run


# ------------------------------------------------------------------------------------------------------- eval


@dataclass
class EvalInputs:
    eval_dir: Path
    summary: dict[str, Any]
    ours: str | None
    baseline: str | None
    files: list[Path] = field(default_factory=list)

    @property
    def n_items(self) -> int | None:
        return self.summary.get("n_items")

    def metric(self, name: str, system: str | None) -> Interval | None:
        by_system = (self.summary.get("metrics") or {}).get(name) or {}
        return to_interval(by_system.get(system)) if system else None

    def comparisons_for(self, system: str | None) -> list[dict[str, Any]]:
        return [c for c in self.summary.get("comparisons") or [] if isinstance(c, dict) and c.get("b") == system
                and c.get("a") == self.baseline]


def pick_systems(summary: dict[str, Any], ours: str | None = None) -> tuple[str | None, str | None]:
    """(our published system, the baseline). Ours defaults to the fine-tune *without* retrieval grounding:
    the card describes the weights people download, and grounding is a serving feature they may not use."""
    systems = [s for s in summary.get("systems") or [] if isinstance(s, str)]
    baseline = summary.get("baseline") or next((s for s in systems if s.lower().startswith("base")), None)
    if ours is not None:
        if systems and ours not in systems:
            raise PublishError(f"--system {ours!r} is not in the eval's systems {systems}")
        return ours, baseline
    candidates = [s for s in systems if s != baseline]
    plain = [s for s in candidates if not any(k in s.lower() for k in ("rag", "ground", "retriev"))]
    return (plain or candidates or [None])[0], baseline


def read_eval(eval_dir: str | Path, system: str | None = None) -> EvalInputs:
    eval_dir = Path(eval_dir)
    summary = read_json(eval_dir / "summary.json")
    if summary is None:
        raise PublishError(f"{eval_dir}: no summary.json; run `sagpt eval report` first")
    if not isinstance(summary, dict):
        raise PublishError(f"{eval_dir / 'summary.json'}: expected a JSON object")
    ours, baseline = pick_systems(summary, system)
    files = [eval_dir / n for n in EVAL_FILES if (eval_dir / n).exists()]
    return EvalInputs(eval_dir, summary, ours, baseline, files)


def judge_verdict(judge: dict[str, Any] | None) -> dict[str, Any] | None:
    """Summarise the blind judge result (eval's judge.json) as win/tie/loss rates and a verdict."""
    if not isinstance(judge, dict) or not judge.get("n_judged_items", judge.get("counts")):
        return None
    counts = judge.get("counts") or {}
    rates = {k: to_interval(v) for k, v in (judge.get("rates") or {}).items()}
    p = _num(((judge.get("sign_tests") or {}).get("preference") or {}).get("p_value"))
    verdict = judge.get("verdict")
    if verdict is None and p is not None:
        # Same rule as the eval report: a preference counts only when the sign test rejects "no preference".
        verdict = "not distinguishable" if p >= 0.05 else (
            "better" if counts.get("win", 0) > counts.get("loss", 0) else "worse")
    return {"a": judge.get("a"), "b": judge.get("b"), "judge": judge.get("judge"), "n": judge.get("n_judged_items"),
            "rates": {k: v for k, v in rates.items() if v is not None}, "p_value": p, "verdict": verdict}


# ------------------------------------------------------------------------------------------------ audit and KB


@dataclass
class AuditInputs:
    path: Path
    data: dict[str, Any]
    rates: dict[str, Interval]  # e.g. error_rate, caveat_rate, found by key name


AUDIT_KEYWORDS = ("error", "contradict", "unsupported", "caveat", "hallucin", "scaffold")
# Denominators of the `sagpt audit` summary rates, for the "over N answers" wording.
AUDIT_DENOMINATORS = {"error_rate": "answers", "missing_caveat_rate": "policy_sensitive_answers",
                      "scaffolding_rate": "answers"}


def read_audit(path: str | Path) -> AuditInputs:
    """The summary JSON of `sagpt audit --out x.jsonl` (x.summary.json), or a folder holding one.

    Rates are found by name: ``<name>_rate`` (a number, with an optional ``<name>_rate_ci95`` [lo, hi] beside
    it) or a dict ``{mean|rate, ci_low, ci_high}`` / ``{count, n}``, at the top level or one level down.
    """
    path = Path(path)
    if path.is_dir():
        candidates = sorted(path.glob("*.summary.json")) + sorted(path.glob("*summary*.json")) + \
            sorted(path.glob("*.json"))
        if not candidates:
            raise PublishError(f"{path}: no audit summary JSON inside (run `sagpt audit FILE --out {path}/x.jsonl`)")
        path = candidates[0]
    if path.suffix == ".jsonl" and path.with_suffix(".summary.json").exists():
        path = path.with_suffix(".summary.json")  # the user pointed at the per-answer report
    data = read_json(path)
    if data is None:
        raise PublishError(f"{path}: audit report not found")
    if not isinstance(data, dict):
        raise PublishError(f"{path}: expected a JSON object (the audit summary)")
    rates: dict[str, Interval] = {}
    for prefix, node in [("", data)] + [(f"{k}.", v) for k, v in data.items() if isinstance(v, dict)]:
        for key, value in node.items():
            low = key.lower()
            if not (low.endswith("_rate") and any(k in low for k in AUDIT_KEYWORDS)):
                continue
            interval = to_interval(value)
            if interval is None:
                continue
            ci = node.get(f"{key}_ci95")
            if isinstance(ci, (list, tuple)) and len(ci) == 2 and interval.ci_low is None:
                interval.ci_low, interval.ci_high = _num(ci[0]), _num(ci[1])
            n = node.get(AUDIT_DENOMINATORS.get(key, ""))
            if interval.n is None and isinstance(n, int):
                interval.n = n
            rates[f"{prefix}{key}"] = interval
    return AuditInputs(path, data, rates)


def kb_version(run_info: dict[str, Any] | None = None) -> str | None:
    """The KB version the run used (run_info.json), else the installed KB's current version, else None."""
    if run_info and run_info.get("kb_version"):
        return str(run_info["kb_version"])
    try:
        from ..kb.store import load_kb

        return load_kb().version
    except Exception as exc:  # noqa: BLE001 - a missing or broken KB must not block publishing an adapter
        log.info("KB version unavailable: %s", exc)
        return None
