"""The outputs file: one row per (system, item) answer.

Columns: ``id, prompt, response[, reference], system, latency_s, new_tokens, truncated``. ``eval score`` and
``eval judge`` accept any file with at least ``id, prompt, response`` (answers produced elsewhere too): a file
without a ``system`` column is one system, named after the file.
"""
from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..data.io import DataError, iter_raw
from .items import json_cell, opt_text, parse_checks
from ..utils import atomic_write_bytes, atomic_write_jsonl

REQUIRED = ("id", "prompt", "response")
COLUMNS = ("id", "prompt", "response", "reference", "system", "latency_s", "new_tokens", "truncated", "category",
           "checks", "sources", "mode", "raw_response")


@dataclass
class Answer:
    id: str
    prompt: str
    response: str
    system: str
    reference: str | None = None
    latency_s: float | None = None
    new_tokens: int | None = None
    truncated: bool | None = None
    category: str | None = None           # prompt-set category and checks, carried so `eval score` on the
    checks: dict[str, Any] | None = None  # outputs file alone computes the category metrics
    sources: list[str] | None = None      # KB fact ids the answer cites (grounded systems)
    mode: str | None = None               # what produced a grounded answer: generate / compose / out_of_scope
    raw_response: str | None = None       # a grounded system's model text before the answer path edited it
    line: str = ""  # file:line it was read from, for error messages (not written)

    def row(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k != "line"}
        for optional in ("reference", "category", "checks", "sources", "mode", "raw_response"):
            if out[optional] is None:
                del out[optional]
        return {k: out[k] for k in COLUMNS if k in out}


def write_outputs(answers: Iterable[Answer], path: str | Path) -> Path:
    path = Path(path)
    rows = [a.row() for a in answers]
    if path.suffix.lower() == ".csv":
        rows = [{k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in r.items()} for r in rows]
        import pandas as pd

        buf = io.StringIO()
        pd.DataFrame(rows).to_csv(buf, index=False)
        return atomic_write_bytes(path, buf.getvalue().encode("utf-8"))
    if path.suffix.lower() != ".jsonl":
        raise DataError(f"{path}: outputs are written as .jsonl or .csv")
    return atomic_write_jsonl(path, rows)


def read_outputs(paths: Sequence[str | Path], allow_empty: bool = False) -> dict[str, list[Answer]]:
    """Read one or more outputs files into ``{system: [answers in file order]}``.

    Raises :class:`DataError` on a missing column, an empty response (unless ``allow_empty``: a model that
    answers nothing is then scored as answering nothing), or an id repeated within one system.
    """
    systems: dict[str, list[Answer]] = {}
    for path in paths:
        default_system = Path(path).stem
        for rec in iter_raw(path):
            where = f"{rec.file}:{rec.line}"
            if rec.data is None:
                raise DataError(f"{where}: {rec.problems[0].message if rec.problems else 'unreadable record'}")
            row = rec.data
            missing = [c for c in REQUIRED if c not in row]
            if missing:
                raise DataError(f"{where}: missing column(s) {', '.join(missing)} (an outputs file needs "
                                f"{', '.join(REQUIRED)}; found {', '.join(sorted(row))})")
            response = row["response"]
            if response is None or (isinstance(response, str) and not response.strip()):
                if not allow_empty:
                    raise DataError(f"{where}: empty response for id {row['id']!r} (pass --allow-empty to score "
                                    "empty answers as such)")
                response = ""
            system = str(row.get("system") or default_system)
            answer = Answer(
                id=str(row["id"]), prompt=str(row["prompt"]), response=str(response), system=system,
                reference=opt_text(row.get("reference")), latency_s=_opt_float(row.get("latency_s")),
                new_tokens=_opt_int(row.get("new_tokens")), truncated=_opt_bool(row.get("truncated")),
                category=opt_text(row.get("category")), checks=parse_checks(row.get("checks"), where),
                sources=_opt_list(row.get("sources"), where), mode=opt_text(row.get("mode")),
                raw_response=opt_text(row.get("raw_response")), line=where,
            )
            systems.setdefault(system, []).append(answer)
    for system, answers in systems.items():
        seen: dict[str, str] = {}
        for a in answers:
            if a.id in seen:
                raise DataError(f"{a.line}: id {a.id!r} of system {system!r} already appeared at {seen[a.id]}")
            seen[a.id] = a.line
    if not systems:
        raise DataError(f"{', '.join(map(str, paths))}: no answers found")
    return systems


def align(systems: dict[str, list[Answer]]) -> tuple[list[str], dict[str, list[Answer]]]:
    """Put every system's answers in the same item order; ids must match exactly across systems.

    Paired statistics are only meaningful on the same items, so a mismatch is an error that lists the ids,
    never a silent intersection.
    """
    names = list(systems)
    ref_ids = [a.id for a in systems[names[0]]]
    ref_set = set(ref_ids)
    for name in names[1:]:
        ids = {a.id for a in systems[name]}
        if ids != ref_set:
            only_a, only_b = sorted(ref_set - ids), sorted(ids - ref_set)
            raise DataError(
                f"systems {names[0]!r} and {name!r} answer different items: only in {names[0]!r}: "
                f"{_preview(only_a)}; only in {name!r}: {_preview(only_b)}")
    aligned = {name: sorted(ans, key=lambda a, order={i: k for k, i in enumerate(ref_ids)}: order[a.id])
               for name, ans in systems.items()}
    return ref_ids, aligned


def _preview(ids: list[str]) -> str:
    return (json.dumps(ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")) if ids else "none"


def _opt_list(v: Any, where: str) -> list[str] | None:
    ids = json_cell(v, where, "sources", list, "a list of fact ids")
    return None if ids is None else [str(x) for x in ids]


def _opt_float(v: Any) -> float | None:
    try:
        return None if v is None or v == "" else float(v)
    except (TypeError, ValueError):
        return None


def _opt_int(v: Any) -> int | None:
    f = _opt_float(v)
    return None if f is None else int(f)


def _opt_bool(v: Any) -> bool | None:
    if v is None or v == "":
        return None
    if isinstance(v, str):
        return v.strip().lower() in ("true", "1", "yes")
    return bool(v)
