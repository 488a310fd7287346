"""``eval judge``: blind pairwise LLM-as-judge with a domain rubric, then de-blinded statistics.

Blinding: per item the two answers are shown as "Answer A" / "Answer B" in a seeded random order. The judge sees
only the question and the two texts; which system is A is written to a separate key file and only joined back
afterwards (:func:`deblind`). With ``both_orders`` every item is judged a second time with the answers swapped,
which measures position bias and feeds the McNemar–Bowker table.

The judge is any OpenAI-compatible endpoint (``openai`` client) or a local transformers model. Its reply must
be a JSON object; we extract it robustly (code fences, prose around it, loose value spellings), ask once more
if it is unusable, and otherwise record the judgement as unparseable: a judge failure never stops the run.
"""
from __future__ import annotations

import json
import logging
import random
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, Sequence

from pydantic import BaseModel, Field, ValidationError, field_validator

from ..config import ConfigError
from ..utils import atomic_write_json, atomic_write_jsonl
from .outputs import Answer

log = logging.getLogger(__name__)

RUBRIC = """You are an experienced international-student advisor grading two answers to a student's question.
You are not told which assistant wrote which answer. Judge content, not order or length.

Score EACH answer on two scales:
- accuracy (0-3): 3 = every specific claim (visa and work rules, costs, proof-of-funds amounts, test scores,
  deadlines, named scholarships or programmes) is correct, or clearly hedged where it may vary; 2 = minor
  imprecision that would not mislead; 1 = at least one wrong or unverifiable specific claim; 0 = confidently
  wrong on something that matters (an invented scholarship, a wrong visa or work-rights rule, a wrong test).
- helpfulness (0-3): 3 = answers the actual question with concrete, actionable steps; 2 = useful but vague or
  incomplete; 1 = mostly generic; 0 = off-topic, empty or refuses without reason.
Visa, immigration, work-rights, proof-of-funds and health-insurance advice given confidently WITHOUT telling the
student to confirm it with the official government or university source scores at most 1 on helpfulness;
confidently wrong advice on those topics scores 0 on accuracy.

Also flag, for EACH answer, what a student would be hurt or confused by (true/false):
- incoherent: repeats itself, loops, breaks off, or does not read as a sensible answer;
- invented_specifics: names an organisation, scholarship, programme, URL, figure or deadline that looks made up
  or that you cannot verify;
- confident_error: states something wrong as fact, without hedging;
- missing_caveat: a visa / work / funds / health-cover answer that never sends the student to the official source;
- premise_accepted: the question rests on a false premise (a city in the wrong country, a test a school does not
  use, a rule that does not exist) and the answer goes along with it; false when there is no false premise.

Then say which answer you prefer overall: "A", "B", or "tie" if neither is better.
Reply with ONLY a JSON object, no other text:
{"accuracy_a": 0-3, "helpfulness_a": 0-3, "accuracy_b": 0-3, "helpfulness_b": 0-3, "flags_a": {"incoherent": false, "invented_specifics": false, "confident_error": false, "missing_caveat": false, "premise_accepted": false}, "flags_b": {...same keys...}, "preference": "A" | "B" | "tie", "reason": "one short sentence"}"""

# What the rubric flags in each answer (rates per system in the report, lower is better for all of them).
FLAGS = ("incoherent", "invented_specifics", "confident_error", "missing_caveat", "premise_accepted")

USER_TEMPLATE = """[Student question]
{question}

[Answer A]
{answer_a}

[Answer B]
{answer_b}"""

RETRY_MESSAGE = ('That reply could not be read. Reply with ONLY the JSON object: {"accuracy_a": 0-3, '
                 '"helpfulness_a": 0-3, "accuracy_b": 0-3, "helpfulness_b": 0-3, "preference": "A" | "B" | "tie", '
                 '"reason": "..."}')


class Judgement(BaseModel):
    accuracy_a: int = Field(ge=0, le=3)
    helpfulness_a: int = Field(ge=0, le=3)
    accuracy_b: int = Field(ge=0, le=3)
    helpfulness_b: int = Field(ge=0, le=3)
    preference: Literal["A", "B", "tie"]
    reason: str = ""
    # optional: a judge that leaves the flags out still gives a usable accuracy / helpfulness / preference
    flags_a: dict[str, bool] | None = None
    flags_b: dict[str, bool] | None = None

    @field_validator("flags_a", "flags_b", mode="before")
    @classmethod
    def _flags(cls, v: Any) -> Any:
        if not isinstance(v, dict):
            return None
        out = {}
        for k, x in v.items():
            key = str(k).strip().lower().replace(" ", "_")
            if key in FLAGS:
                out[key] = x if isinstance(x, bool) else str(x).strip().lower() in ("true", "yes", "1")
        return out or None

    @field_validator("accuracy_a", "helpfulness_a", "accuracy_b", "helpfulness_b", mode="before")
    @classmethod
    def _score(cls, v: Any) -> Any:
        # judges write 2, "2", 2.0 or "2/3"
        if isinstance(v, str):
            m = re.match(r"\s*(\d+(?:\.\d+)?)", v)
            v = m.group(1) if m else v
        if isinstance(v, (str, float)):
            try:
                f = float(v)
            except ValueError:
                return v
            return int(f) if f.is_integer() else v
        return v

    @field_validator("preference", mode="before")
    @classmethod
    def _pref(cls, v: Any) -> Any:
        if not isinstance(v, str):
            return v
        s = re.sub(r"[^a-z]", " ", v.lower()).split()
        if not s:
            return v
        if "tie" in s or "equal" in s or "neither" in s or "both" in s:
            return "tie"
        if s[-1] in ("a", "b"):
            return s[-1].upper()
        if s[0] in ("a", "b"):
            return s[0].upper()
        return v


def parse_judgement(text: str) -> Judgement | None:
    """The first JSON object in ``text`` that validates as a judgement, else None."""
    if not text:
        return None
    decoder = json.JSONDecoder()
    for m in re.finditer(r"\{", text):
        try:
            obj, _ = decoder.raw_decode(text, m.start())
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            obj = {str(k).strip().lower().replace(" ", "_"): v for k, v in obj.items()}
            try:
                return Judgement.model_validate(obj)
            except ValidationError:
                continue
    return None


# --------------------------------------------------------------------------------------------- backends


class JudgeBackend(Protocol):
    name: str

    def complete(self, messages: list[dict[str, str]]) -> str: ...


class EndpointJudge:
    """Any OpenAI-compatible chat endpoint; temperature 0 so the judgement is reproducible where the server is."""

    def __init__(self, base_url: str, model: str = "default", api_key: str | None = None, max_tokens: int = 300,
                 timeout_s: float = 120.0):
        import os

        from openai import OpenAI

        self.name, self.base_url, self.model, self.max_tokens = f"{model}@{base_url}", base_url, model, max_tokens
        self.client = OpenAI(base_url=base_url, api_key=api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY",
                             timeout=timeout_s, max_retries=2)

    def complete(self, messages: list[dict[str, str]]) -> str:
        import openai

        try:
            resp = self.client.chat.completions.create(model=self.model, messages=messages, temperature=0.0,
                                                       max_tokens=self.max_tokens)
        except openai.APIConnectionError as exc:
            # Nothing can be judged without the server: stop with a clear message instead of N empty verdicts.
            raise ConfigError(f"judge endpoint {self.base_url} unreachable: {exc}") from exc
        return resp.choices[0].message.content or ""


class HFJudge:
    """A local transformers chat model as judge (greedy decoding)."""

    def __init__(self, source: str, max_tokens: int = 300, dtype: str = "float32"):
        from .. import models

        loaded = models.load(source, dtype=dtype)
        self.name, self.model, self.tokenizer, self.max_tokens = f"hf:{source}", loaded.model, loaded.tokenizer, \
            max_tokens

    def complete(self, messages: list[dict[str, str]]) -> str:
        import torch

        enc = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                                 return_dict=True)
        with torch.inference_mode():
            out = self.model.generate(**enc, max_new_tokens=self.max_tokens, do_sample=False,
                                      pad_token_id=self.tokenizer.pad_token_id)
        return self.tokenizer.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)


# --------------------------------------------------------------------------------------------- judging


@dataclass
class BlindTask:
    """What the judge sees (``id``, ``pass_``, question and two texts); the key is kept in ``KeyEntry``."""

    id: str
    pass_: int
    question: str
    answer_a: str
    answer_b: str


@dataclass
class KeyEntry:
    id: str
    pass_: int
    a: str  # system shown as Answer A
    b: str


def make_tasks(answers: dict[str, list[Answer]], sys_a: str, sys_b: str, both_orders: bool = True,
               seed: int = 0) -> tuple[list[BlindTask], list[KeyEntry]]:
    rng = random.Random(seed)
    tasks, keys = [], []
    for x, y in zip(answers[sys_a], answers[sys_b]):
        first = (sys_a, x, sys_b, y) if rng.random() < 0.5 else (sys_b, y, sys_a, x)
        orders = [first, (first[2], first[3], first[0], first[1])] if both_orders else [first]
        for k, (na, ans_a, nb, ans_b) in enumerate(orders, start=1):
            tasks.append(BlindTask(x.id, k, x.prompt, ans_a.response, ans_b.response))
            keys.append(KeyEntry(x.id, k, na, nb))
    return tasks, keys


def judge_tasks(tasks: Sequence[BlindTask], backend: JudgeBackend, progress=None) -> list[dict[str, Any]]:
    """Ask the judge about each blind task; one retry on an unusable reply, then record it as unparseable."""
    out = []
    for task in tasks:
        messages = [{"role": "system", "content": RUBRIC},
                    {"role": "user", "content": USER_TEMPLATE.format(question=task.question,
                                                                     answer_a=task.answer_a or "(empty answer)",
                                                                     answer_b=task.answer_b or "(empty answer)")}]
        raws, parsed, error = [], None, None
        for attempt in range(2):
            try:
                raw = backend.complete(messages)
            except ConfigError:
                raise
            except Exception as exc:  # a 500 or a bad response from one call should not sink the whole run
                error = f"{type(exc).__name__}: {exc}"
                log.warning("judge call failed for %s (pass %d): %s", task.id, task.pass_, error)
                raws.append("")
                continue
            raws.append(raw)
            parsed = parse_judgement(raw)
            if parsed is not None:
                break
            messages = messages + [{"role": "assistant", "content": raw}, {"role": "user", "content": RETRY_MESSAGE}]
        out.append({"id": task.id, "pass": task.pass_, "attempts": len(raws), "raw": raws[-1],
                    "parsed": parsed.model_dump() if parsed else None, "error": None if parsed else error or
                    "unparseable"})
        if progress:
            progress(1)
    return out


# --------------------------------------------------------------------------------------------- de-blinding


def deblind(judgements: Sequence[dict], keys: Sequence[KeyEntry], sys_a: str, sys_b: str) -> dict[str, Any]:
    """Join the key back and compute the statistics (all from system b's point of view against system a).

    * Per item verdict: each usable judgement votes +1 (b preferred), -1 (a preferred) or 0; the sign of the
      sum is the item's verdict, so with both orders a split decision is a tie (position effects cancel).
    * win/tie/loss: item verdicts with Wilson 95% intervals (items with no usable judgement are counted as
      unparseable, not as ties).
    * McNemar–Bowker (both orders only): 3×3 table, rows = the judge's answer (A / B / tie) in the pass where
      system a was shown as A, columns = its answer in the pass where a was shown as B. Cell (A, B) = a won both
      passes, (B, A) = b won both; diagonal cells (A, A), (B, B) are position-driven and carry no information
      on a vs b. Under "no preference between the systems" the table is symmetric.
    * Sign tests on per-item accuracy and helpfulness (mean over usable passes) and on the item verdicts.
    """
    from .. import significance as stats

    key = {(k.id, k.pass_): k for k in keys}
    by_item: dict[str, list[dict]] = {}
    unparseable_judgements = 0
    position_a = position_b = 0
    for j in judgements:
        k = key[(j["id"], j["pass"])]
        by_item.setdefault(j["id"], [])
        if j["parsed"] is None:
            unparseable_judgements += 1
            continue
        p = j["parsed"]
        winner = {"A": k.a, "B": k.b, "tie": "tie"}[p["preference"]]
        position_a += p["preference"] == "A"
        position_b += p["preference"] == "B"
        scores = {k.a: (p["accuracy_a"], p["helpfulness_a"]), k.b: (p["accuracy_b"], p["helpfulness_b"])}
        flags = {k.a: p.get("flags_a"), k.b: p.get("flags_b")}
        by_item[j["id"]].append({"pass": j["pass"], "winner": winner, "position": p["preference"],
                                 "a_is": k.a, "scores": scores, "flags": flags})

    verdicts, acc_a, acc_b, help_a, help_b = [], [], [], [], []
    for votes in by_item.values():
        if not votes:
            continue
        total = sum(1 if v["winner"] == sys_b else -1 if v["winner"] == sys_a else 0 for v in votes)
        verdicts.append((total > 0) - (total < 0))
        acc_a.append(sum(v["scores"][sys_a][0] for v in votes) / len(votes))
        acc_b.append(sum(v["scores"][sys_b][0] for v in votes) / len(votes))
        help_a.append(sum(v["scores"][sys_a][1] for v in votes) / len(votes))
        help_b.append(sum(v["scores"][sys_b][1] for v in votes) / len(votes))

    n = len(verdicts)
    counts = {"win": verdicts.count(1), "tie": verdicts.count(0), "loss": verdicts.count(-1)}
    rates = {}
    for name, c in counts.items():
        lo, hi = stats.wilson_interval(c, n)
        rates[name] = {"rate": c / n if n else float("nan"), "ci_low": lo, "ci_high": hi}
    both = len({j["pass"] for j in judgements}) > 1
    table = _bowker_table(by_item, sys_a) if both else None
    non_tie = position_a + position_b
    return {
        "a": sys_a, "b": sys_b, "perspective": f"win = {sys_b} preferred over {sys_a}",
        "n_items": len(by_item), "n_judged_items": n, "n_judgements": len(judgements),
        "unparseable_judgements": unparseable_judgements, "unparseable_items": len(by_item) - n,
        "both_orders": both, "counts": counts, "rates": rates,
        "mean_scores": {sys_a: {"accuracy": _mean(acc_a), "helpfulness": _mean(help_a)},
                        sys_b: {"accuracy": _mean(acc_b), "helpfulness": _mean(help_b)}},
        "bowker": ({**stats.bowker_test(table), "table": table.tolist(),
                    "rows": f"pass with {sys_a} shown as A: A / B / tie",
                    "columns": f"pass with {sys_a} shown as B: A / B / tie"} if table is not None else None),
        "flag_rates": _flag_rates(by_item, (sys_a, sys_b)),
        "sign_tests": {"accuracy": stats.sign_test(acc_a, acc_b), "helpfulness": stats.sign_test(help_a, help_b),
                       "preference": stats.sign_test([0] * n, verdicts)},
        "position_bias": {
            "chose_A": position_a, "chose_B": position_b,
            "share_A": position_a / non_tie if non_tie else float("nan"),
            "share_A_ci": list(stats.wilson_interval(position_a, non_tie)),
            "p_value": stats.sign_test([0] * non_tie, [1] * position_a + [-1] * position_b)["p_value"],
            "consistency": _consistency(by_item) if both else None,
        },
    }


def _flag_rates(by_item: dict[str, list[dict]], systems: tuple[str, str]) -> dict[str, dict[str, Any]]:
    """Per system and flag: share of judged items where the judge raised it (in any pass), with a Wilson CI."""
    from .. import significance as stats

    out: dict[str, dict[str, Any]] = {}
    for system in systems:
        out[system] = {}
        for flag in FLAGS:
            seen = [any((v["flags"].get(system) or {}).get(flag, False) for v in votes)
                    for votes in by_item.values() if any(v["flags"].get(system) for v in votes)]
            if not seen:
                continue
            lo, hi = stats.wilson_interval(sum(seen), len(seen))
            out[system][flag] = {"rate": sum(seen) / len(seen), "ci_low": lo, "ci_high": hi, "n": len(seen)}
    return out


def _bowker_table(by_item: dict[str, list[dict]], sys_a: str):
    import numpy as np

    idx = {"A": 0, "B": 1, "tie": 2}
    table = np.zeros((3, 3), dtype=int)
    for votes in by_item.values():
        a_first = [v["position"] for v in votes if v["a_is"] == sys_a]
        a_second = [v["position"] for v in votes if v["a_is"] != sys_a]
        if a_first and a_second:  # only items with both passes usable are paired
            table[idx[a_first[0]], idx[a_second[0]]] += 1
    return table


def _consistency(by_item: dict[str, list[dict]]) -> float | None:
    pairs = [votes for votes in by_item.values() if len(votes) == 2]
    if not pairs:
        return None
    return sum(v[0]["winner"] == v[1]["winner"] for v in pairs) / len(pairs)


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else float("nan")


def run_judge(answers: dict[str, list[Answer]], sys_a: str, sys_b: str, backend: JudgeBackend, out_dir: str | Path,
              both_orders: bool = True, seed: int = 0, show_progress: bool = True) -> dict[str, Any]:
    """Blind tasks → judgements (judgements.jsonl, no system names) + key (judge_key.jsonl) → judge.json."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    tasks, keys = make_tasks(answers, sys_a, sys_b, both_orders=both_orders, seed=seed)
    with Progress(TextColumn("[bold]judge"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  disable=not show_progress) as bar:
        t = bar.add_task("judge", total=len(tasks))
        judgements = judge_tasks(tasks, backend, progress=lambda n: bar.advance(t, n))
    out_dir = Path(out_dir)
    atomic_write_jsonl(out_dir / "judgements.jsonl", judgements)
    atomic_write_jsonl(out_dir / "judge_key.jsonl", [asdict(k) for k in keys])
    result = {"judge": backend.name, "seed": seed, **deblind(judgements, keys, sys_a, sys_b)}
    atomic_write_json(out_dir / "judge.json", result)
    return result
