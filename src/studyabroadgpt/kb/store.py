"""Loading and checking a knowledge base.

A knowledge base is a directory of YAML (or JSONL) files, each a list of facts (``kb/schema.py``). A YAML file may
also be a mapping ``{defaults: {...}, facts: [...]}`` whose defaults (say ``destination: GB``) fill every fact.
Loading is strict — the first file with a bad fact raises :class:`KBError` naming file, item, line and field —
while :func:`check_kb` collects every problem at once for ``kb validate``.
"""
from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Iterator

import yaml
from pydantic import ValidationError

from ..utils import fingerprint_obj
from .schema import Fact, KBError, Value

DEFAULT_KB_DIR = Path(__file__).resolve().parent / "facts"
KB_SUFFIXES = (".yaml", ".yml", ".jsonl")


@dataclass
class KBIssue:
    """One problem found by ``kb validate``: ``error`` blocks use, ``warning`` asks for a look."""

    file: str
    item: int | None
    line: int | None
    field: str
    message: str
    severity: str = "error"
    fact_id: str | None = None

    def __str__(self) -> str:
        where = self.file + (f":{self.line}" if self.line else "") + (f" item {self.item}" if self.item else "")
        who = f" ({self.fact_id})" if self.fact_id else ""
        return f"{where}{who}: {self.field}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "item": self.item, "line": self.line, "field": self.field,
                "message": self.message, "severity": self.severity, "fact_id": self.fact_id}


@dataclass
class KnowledgeBase:
    facts: list[Fact]
    paths: list[Path] = field(default_factory=list)

    @cached_property
    def by_id(self) -> dict[str, Fact]:
        return {f.id: f for f in self.facts}

    @cached_property
    def version(self) -> str:
        """Content fingerprint: changes whenever any fact changes, so caches keyed on it never go stale."""
        return fingerprint_obj([f.model_dump(mode="json") for f in self.facts])

    @cached_property
    def destinations(self) -> list[str]:
        return sorted({f.destination for f in self.facts})

    @cached_property
    def topics(self) -> list[str]:
        return sorted({f.topic for f in self.facts})

    def for_destination(self, destination: str) -> list[Fact]:
        return [f for f in self.facts if f.destination == destination]

    def stale(self, today: dt.date | None = None) -> list[Fact]:
        """Facts past their ``review_after`` date, oldest review first."""
        today = today or dt.date.today()
        return sorted((f for f in self.facts if f.review_after < today), key=lambda f: f.review_after)

    def __len__(self) -> int:
        return len(self.facts)


# --------------------------------------------------------------------------------------------- reading


@dataclass
class _RawFact:
    file: str
    item: int           # 1-based position in the file
    line: int | None    # line where the item starts
    data: Any


def kb_files(path: str | Path | None = None) -> list[Path]:
    root = Path(path) if path is not None else DEFAULT_KB_DIR
    if root.is_dir():
        files = sorted(p for p in root.rglob("*") if p.suffix.lower() in KB_SUFFIXES and p.is_file())
        if not files:
            raise KBError(f"{root}: no knowledge-base files ({', '.join(KB_SUFFIXES)}) in this directory")
        return files
    if not root.exists():
        raise KBError(f"{root}: no such knowledge-base file or directory")
    if root.suffix.lower() not in KB_SUFFIXES:
        raise KBError(f"{root}: unsupported knowledge-base file type {root.suffix!r}; use .yaml or .jsonl")
    return [root]


def _iter_raw(path: Path) -> Iterator[_RawFact]:
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise KBError(f"{name}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from exc
    if path.suffix.lower() == ".jsonl":
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise KBError(f"{name}:{lineno}: invalid JSON: {exc.msg} at column {exc.colno}") from exc
            yield _RawFact(name, lineno, lineno, obj)
        return
    try:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: ~20x faster
        obj = yaml.load(text, Loader=loader)
        root = yaml.compose(text, Loader=loader)  # the node tree carries line numbers for each list item
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise KBError(f"{name}{where}: invalid YAML: {getattr(exc, 'problem', exc)}") from exc
    if obj is None:
        return
    defaults: dict[str, Any] = {}
    items_node = root
    if isinstance(obj, dict):
        if not isinstance(obj.get("facts"), list):
            raise KBError(f"{name}: top level must be a list of facts or a mapping with a 'facts' list")
        defaults = obj.get("defaults") or {}
        if not isinstance(defaults, dict):
            raise KBError(f"{name}: defaults: must be a mapping of field: value")
        items_node = next(v for k, v in root.value if k.value == "facts")
        obj = obj["facts"]
    if not isinstance(obj, list):
        raise KBError(f"{name}: top level must be a list of facts, got {type(obj).__name__}")
    for i, item in enumerate(obj):
        line = items_node.value[i].start_mark.line + 1 if i < len(items_node.value) else None
        data = {**defaults, **item} if isinstance(item, dict) else item
        yield _RawFact(name, i + 1, line, data)


def _parse(raw: _RawFact) -> tuple[Fact | None, list[KBIssue]]:
    if not isinstance(raw.data, dict):
        return None, [KBIssue(raw.file, raw.item, raw.line, "<fact>",
                              f"expected a mapping of fields, got {type(raw.data).__name__}")]
    fact_id = raw.data.get("id") if isinstance(raw.data.get("id"), str) else None
    try:
        return Fact.model_validate(raw.data), []
    except ValidationError as exc:
        issues = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"]) or "<fact>"
            msg = err["msg"].removeprefix("Value error, ")
            issues.append(KBIssue(raw.file, raw.item, raw.line, loc, msg, fact_id=fact_id))
        return None, issues


def load_kb(path: str | Path | None = None) -> KnowledgeBase:
    """Load a knowledge base from a directory, a YAML file or a JSONL file (default: the shipped one)."""
    files = kb_files(path)
    facts: list[Fact] = []
    seen: dict[str, str] = {}
    for f in files:
        for raw in _iter_raw(f):
            fact, issues = _parse(raw)
            if issues:
                first = issues[0]
                more = f" (and {len(issues) - 1} more problems; run `sagpt kb validate`)" if len(issues) > 1 else ""
                raise KBError(f"{first}{more}")
            if fact.id in seen:
                raise KBError(f"{raw.file}:{raw.line} item {raw.item}: id: duplicate fact id {fact.id!r} "
                              f"(first defined in {seen[fact.id]})")
            seen[fact.id] = f"{raw.file}:{raw.line}"
            facts.append(fact)
    if not facts:
        raise KBError(f"{path or DEFAULT_KB_DIR}: the knowledge base holds no facts")
    return KnowledgeBase(facts=facts, paths=files)


# --------------------------------------------------------------------------------------------- checking


def value_signature(v: Value) -> tuple:
    """What two values of the same key must agree on (the number and what it is measured in)."""
    return (v.kind, v.amount, (v.currency or "").upper(), v.period, (v.test or "").lower(), v.min_score,
            v.section, v.unit, v.per, v.date, v.text)


def check_kb(path: str | Path | None = None, today: dt.date | None = None) -> tuple[list[Fact], list[KBIssue]]:
    """Every problem in a knowledge base: schema, duplicate ids, conflicting values, future ``as_of`` dates."""
    today = today or dt.date.today()
    facts: list[Fact] = []
    issues: list[KBIssue] = []
    where: dict[str, tuple[str, int, int | None]] = {}
    for f in kb_files(path):
        try:
            raws = list(_iter_raw(f))
        except KBError as exc:
            issues.append(KBIssue(str(f), None, None, "<file>", str(exc).split(": ", 1)[-1]))
            continue
        for raw in raws:
            fact, problems = _parse(raw)
            issues += problems
            if fact is None:
                continue
            if fact.id in where:
                first = where[fact.id]
                issues.append(KBIssue(raw.file, raw.item, raw.line, "id", f"duplicate fact id (first defined in "
                                      f"{first[0]}:{first[2]})", fact_id=fact.id))
                continue
            where[fact.id] = (raw.file, raw.item, raw.line)
            facts.append(fact)
            if fact.as_of > today:
                issues.append(KBIssue(raw.file, raw.item, raw.line, "as_of", f"{fact.as_of} is in the future",
                                      fact_id=fact.id))
            keys = [v.key for v in fact.values]
            for k in {k for k in keys if keys.count(k) > 1}:
                issues.append(KBIssue(raw.file, raw.item, raw.line, "values", f"key {k!r} appears twice in one "
                                      "fact", fact_id=fact.id))
    issues += _conflicts(facts, where)
    return facts, issues


def _conflicts(facts: list[Fact], where: dict[str, tuple[str, int, int | None]]) -> list[KBIssue]:
    """Two facts of one destination giving the same key different values: the audit could not tell which."""
    by_key: dict[tuple[str, str], list[tuple[Fact, Value]]] = defaultdict(list)
    for fact in facts:
        for v in fact.values:
            by_key[(fact.destination, v.key)].append((fact, v))
    issues = []
    for (dest, key), entries in sorted(by_key.items()):
        first_fact, first_value = entries[0]
        for fact, v in entries[1:]:
            if fact.id != first_fact.id and value_signature(v) != value_signature(first_value):
                file, item, line = where[fact.id]
                issues.append(KBIssue(file, item, line, f"values.{key}",
                                      f"conflicts with {first_fact.id} for {dest} {key}: {describe_value(v)} vs "
                                      f"{describe_value(first_value)}", fact_id=fact.id))
    return issues


def describe_value(v: Value) -> str:
    """A value as a person would write it: '£1,483 per month', 'IELTS 6.5', '20 hours per week'."""
    if v.kind == "amount":
        amount = f"{v.amount:,.2f}".removesuffix(".00")
        per = f" per {v.period}" if v.period and v.period != "once" else ""
        return f"{(v.currency or '').upper()} {amount}{per}"
    if v.kind == "score":
        sect = f" ({v.section})" if v.section else ""
        return f"{v.test} {_num(v.min_score)}{sect}"
    if v.kind == "duration":
        per = f" per {v.per}" if v.per else ""
        return f"{_num(v.amount)} {v.unit}{per}"
    if v.kind == "percentage":
        return f"{_num(v.amount)}%"
    if v.kind == "count":
        return _num(v.amount)
    if v.kind == "date":
        return str(v.date)
    return str(v.text)


def _num(x: float | None) -> str:
    if x is None:
        return "?"
    return f"{x:,.0f}" if float(x).is_integer() else f"{x:g}"
