"""Loading and checking a knowledge base.

A knowledge base is a directory of YAML (or JSONL) files of entries (``kb/schema.py``): facts and guidance. A YAML
file is a list of entries, or a mapping ``{defaults: {...}, facts: [...]}`` (or ``guidance: [...]``) whose defaults
(say ``destination: GB``) fill every entry. An entry's kind is its ``kind`` field, else the defaults' ``kind``,
else ``guidance`` for a ``guidance:`` list or a file under a directory named ``guidance``, else ``fact``.

Loading is strict — the first file with a bad entry raises :class:`KBError` naming file, item, line and field —
while :func:`check_kb` collects every problem at once for ``kb validate``. Dates are left to the schema to parse
(YAML's own timestamp parsing would turn an impossible ``as_of: 2024-13-45`` into a bare ValueError that names no
file), and a file that holds no entries at all is an error: an emptied ``gb.yaml`` must not make the United
Kingdom silently disappear.
"""
from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Iterator

import yaml
from pydantic import ValidationError

from ..utils import fingerprint_obj
from .schema import ANY, KIND_FACT, KIND_GUIDANCE, Entry, Fact, Guidance, Institution, KBError, Value

KB_ROOT = Path(__file__).resolve().parent
DEFAULT_KB_DIR = KB_ROOT / "facts"
DEFAULT_GUIDANCE_DIR = KB_ROOT / "guidance"
DEFAULT_KB_DIRS = (DEFAULT_KB_DIR, DEFAULT_GUIDANCE_DIR)
KB_SUFFIXES = (".yaml", ".yml", ".jsonl")
_MODELS: dict[str, type[Fact] | type[Guidance]] = {KIND_FACT: Fact, KIND_GUIDANCE: Guidance}


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # libyaml when present: ~20x faster
    """Safe YAML that keeps timestamps as the text written, so the schema (not YAML) judges a date."""


_Loader.add_constructor("tag:yaml.org,2002:timestamp", lambda loader, node: loader.construct_scalar(node))


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    try:
        return yaml.SafeLoader.construct_yaml_int(loader, node)
    except ValueError as exc:  # Python refuses int() of more than 4,300 digits; say where, not just that
        raise yaml.constructor.ConstructorError(None, None, f"number too long ({len(node.value)} characters)",
                                                node.start_mark) from exc


_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)


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
    """Facts (rules and figures, ``facts``) and guidance (advice, ``guidance``); ``entries`` is both, in order.

    The audit and the gate read ``facts`` only (guidance has no values); retrieval indexes ``entries``.
    """

    facts: list[Fact]
    paths: list[Path] = field(default_factory=list)
    guidance: list[Guidance] = field(default_factory=list)

    @cached_property
    def entries(self) -> list[Entry]:
        return [*self.facts, *self.guidance]

    @cached_property
    def by_id(self) -> dict[str, Entry]:
        return {e.id: e for e in self.entries}

    @cached_property
    def version(self) -> str:
        """Content fingerprint: changes whenever any entry changes, so caches keyed on it never go stale."""
        return fingerprint_obj([e.model_dump(mode="json") for e in self.entries])

    @cached_property
    def destinations(self) -> list[str]:
        """ISO codes of the destinations the KB covers (with at least one fact or destination guidance)."""
        return sorted({e.destination for e in self.entries if e.destination != ANY})

    @cached_property
    def fact_destinations(self) -> list[str]:
        return sorted({f.destination for f in self.facts})

    @cached_property
    def topics(self) -> list[str]:
        return sorted({e.topic for e in self.entries})

    @cached_property
    def institutions(self) -> dict[str, tuple[str, Institution]]:
        """Covered institutions: lower-case name or alias → (destination, institution)."""
        out: dict[str, tuple[str, Institution]] = {}
        for f in self.facts:
            if f.institution is not None:
                for name in (f.institution.name, *f.institution.aliases):
                    out.setdefault(name.lower(), (f.destination, f.institution))
        return out

    def for_destination(self, destination: str) -> list[Fact]:
        return [f for f in self.facts if f.destination == destination]

    def guidance_for(self, destination: str | None = None, topic: str | None = None) -> list[Guidance]:
        """Guidance for a destination (its own and the ``any`` entries) and/or a topic."""
        return [g for g in self.guidance
                if (destination is None or g.destination in (destination, ANY)) and (topic is None or g.topic == topic)]

    def stale(self, today: dt.date | None = None) -> list[Entry]:
        """Entries past their ``review_after`` date, oldest review first."""
        today = today or dt.date.today()
        return sorted((e for e in self.entries if e.review_after < today), key=lambda e: (e.review_after, e.id))

    def __len__(self) -> int:
        return len(self.entries)


# --------------------------------------------------------------------------------------------- reading


@dataclass
class _RawFact:
    file: str
    item: int           # 1-based position in the file
    line: int | None    # line where the item starts
    data: Any
    kind: str = KIND_FACT  # the file's default kind; an entry's own ``kind`` field wins


def kb_files(path: str | Path | None = None) -> list[Path]:
    """The files of a knowledge base: a directory (searched recursively), one file, or the shipped KB."""
    if path is None:
        files = sorted(p for d in DEFAULT_KB_DIRS if d.is_dir() for p in d.rglob("*")
                       if p.suffix.lower() in KB_SUFFIXES and p.is_file())
        if not files:
            raise KBError(f"{DEFAULT_KB_DIR}: the shipped knowledge base has no files")
        return files
    root = Path(path)
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


def _file_kind(path: Path) -> str:
    return KIND_GUIDANCE if any(part.lower() == "guidance" for part in path.parent.parts) else KIND_FACT


def _empty(name: str) -> KBError:
    return KBError(f"{name}: holds no entries (the file is empty or only comments); add entries or delete the "
                   "file, so that a destination never silently disappears from the knowledge base")


def _iter_raw(path: Path) -> Iterator[_RawFact]:
    name = str(path)
    file_kind = _file_kind(path)
    if path.suffix.lower() == ".jsonl":
        yield from _iter_jsonl(path, file_kind)
        return
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise KBError(f"{name}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from exc
    except OSError as exc:
        raise KBError(f"{name}: cannot be read ({exc.strerror or exc})") from exc
    try:
        root = yaml.compose(text, Loader=_Loader)  # the node tree carries line numbers for each list item
        obj = None if root is None else _Loader(text).construct_document(root)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise KBError(f"{name}{where}: invalid YAML: {getattr(exc, 'problem', None) or exc}") from exc
    except (RecursionError, ValueError, TypeError) as exc:
        raise KBError(f"{name}: unreadable YAML: {_short(exc)}") from exc
    if obj is None:
        raise _empty(name)
    defaults: dict[str, Any] = {}
    items_node = root
    if isinstance(obj, dict):
        list_keys = [k for k in ("facts", "guidance") if k in obj]
        if len(list_keys) != 1 or not isinstance(obj[list_keys[0]], list):
            raise KBError(f"{name}: top level must be a list of entries or a mapping with one 'facts' or "
                          "'guidance' list")
        key = list_keys[0]
        defaults = obj.get("defaults") or {}
        if not isinstance(defaults, dict):
            raise KBError(f"{name}: defaults: must be a mapping of field: value")
        unknown = sorted(set(map(str, obj)) - {"defaults", key})
        if unknown:
            raise KBError(f"{name}: unknown top-level key(s) {', '.join(unknown)}; expected 'defaults' and "
                          f"'{key}'")
        if key == "guidance":
            file_kind = KIND_GUIDANCE
        file_kind = defaults.get("kind", file_kind) if isinstance(defaults.get("kind"), str) else file_kind
        items_node = next(v for k, v in root.value if k.value == key)
        obj = obj[key]
    if not isinstance(obj, list):
        raise KBError(f"{name}: top level must be a list of entries, got {type(obj).__name__}")
    if not obj:
        raise _empty(name)
    for i, item in enumerate(obj):
        line = items_node.value[i].start_mark.line + 1 if i < len(items_node.value) else None
        data = {**defaults, **item} if isinstance(item, dict) else item
        yield _RawFact(name, i + 1, line, data, file_kind)


def _iter_jsonl(path: Path, file_kind: str) -> Iterator[_RawFact]:
    """A JSONL file through the package's one JSONL reader (``data.io.iter_raw``: strict orjson, a BOM dropped,
    blank lines skipped); its first unreadable line — bad UTF-8 or JSON, or not an object — is the KBError."""
    from ..data.io import DataError, iter_raw

    n = 0
    try:
        for rec in iter_raw(path):
            if rec.problems:
                raise KBError(f"{path}:{rec.line}: {rec.problems[0].message}")
            n += 1
            yield _RawFact(str(path), rec.line, rec.line, rec.data, file_kind)
    except DataError as exc:  # the file cannot be opened at all
        raise KBError(str(exc)) from exc
    if n == 0:
        raise _empty(str(path))


def _short(exc: BaseException, limit: int = 160) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= limit else text[:limit] + "…"


def _parse(raw: _RawFact) -> tuple[Entry | None, list[KBIssue]]:
    if not isinstance(raw.data, dict):
        return None, [KBIssue(raw.file, raw.item, raw.line, "<entry>",
                              f"expected a mapping of fields, got {type(raw.data).__name__}")]
    fact_id = raw.data.get("id") if isinstance(raw.data.get("id"), str) else None
    kind = raw.data.get("kind", raw.kind)
    model = _MODELS.get(kind) if isinstance(kind, str) else None
    if model is None:
        return None, [KBIssue(raw.file, raw.item, raw.line, "kind",
                              f"unknown entry kind {kind!r}; use 'fact' or 'guidance'", fact_id=fact_id)]
    try:
        return model.model_validate(raw.data), []
    except ValidationError as exc:
        import difflib

        issues = []
        errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")  # a typo explains the rest
        for err in errors:
            loc = ".".join(str(p) for p in err["loc"]) or "<entry>"
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                close = difflib.get_close_matches(str(err["loc"][-1]), model.model_fields, n=1, cutoff=0.75)
                msg = f"unknown field for a {kind} entry" + (f"; did you mean {close[0]!r}?" if close else "")
            issues.append(KBIssue(raw.file, raw.item, raw.line, loc, msg, fact_id=fact_id))
        return None, issues
    except (RecursionError, ValueError, TypeError) as exc:
        return None, [KBIssue(raw.file, raw.item, raw.line, "<entry>", _short(exc), fact_id=fact_id)]


def load_kb(path: str | Path | None = None) -> KnowledgeBase:
    """Load a knowledge base from a directory, a YAML file or a JSONL file (default: the shipped one)."""
    files = kb_files(path)
    facts: list[Fact] = []
    guidance: list[Guidance] = []
    seen: dict[str, str] = {}
    for f in files:
        for raw in _iter_raw(f):
            entry, issues = _parse(raw)
            if issues:
                first = issues[0]
                more = f" (and {len(issues) - 1} more problems; run `sagpt kb validate`)" if len(issues) > 1 else ""
                raise KBError(f"{first}{more}")
            if entry.id in seen:
                raise KBError(f"{raw.file}:{raw.line} item {raw.item}: id: duplicate entry id {entry.id!r} "
                              f"(first defined in {seen[entry.id]})")
            seen[entry.id] = f"{raw.file}:{raw.line}"
            (guidance if entry.kind == KIND_GUIDANCE else facts).append(entry)
    if not facts and not guidance:
        raise KBError(f"{path or DEFAULT_KB_DIR}: the knowledge base holds no entries")
    return KnowledgeBase(facts=facts, paths=files, guidance=guidance)


# --------------------------------------------------------------------------------------------- checking


def value_signature(v: Value) -> tuple:
    """What two values of the same key must agree on (the number and what it is measured in)."""
    return (v.kind, v.amount, (v.currency or "").upper(), v.period, (v.test or "").lower(), v.min_score,
            v.section, v.unit, v.per, v.date, v.text)


def check_kb(path: str | Path | None = None, today: dt.date | None = None) -> tuple[list[Entry], list[KBIssue]]:
    """Every problem in a knowledge base: schema, duplicate ids, conflicting values, future dates, verification."""
    today = today or dt.date.today()
    entries: list[Entry] = []
    issues: list[KBIssue] = []
    where: dict[str, tuple[str, int, int | None]] = {}
    for f in kb_files(path):
        try:
            raws = list(_iter_raw(f))
        except KBError as exc:
            issues.append(KBIssue(str(f), None, None, "<file>", str(exc).removeprefix(str(f)).lstrip(": ")))
            continue
        for raw in raws:
            entry, problems = _parse(raw)
            issues += problems
            if entry is None:
                continue
            if entry.id in where:
                first = where[entry.id]
                issues.append(KBIssue(raw.file, raw.item, raw.line, "id", f"duplicate entry id (first defined in "
                                      f"{first[0]}:{first[2]})", fact_id=entry.id))
                continue
            where[entry.id] = (raw.file, raw.item, raw.line)
            entries.append(entry)
            issues += _entry_issues(entry, raw, today)
    issues += _conflicts([e for e in entries if isinstance(e, Fact)], where)
    return entries, issues


def _entry_issues(entry: Entry, raw: _RawFact, today: dt.date) -> list[KBIssue]:
    def issue(fld: str, msg: str, severity: str = "error") -> KBIssue:
        return KBIssue(raw.file, raw.item, raw.line, fld, msg, severity=severity, fact_id=entry.id)

    out = []
    if entry.as_of > today:
        out.append(issue("as_of", f"{entry.as_of} is in the future"))
    if isinstance(entry, Fact):
        keys = [v.key for v in entry.values]
        out += [issue("values", f"key {k!r} appears twice in one fact") for k in sorted({k for k in keys
                                                                                        if keys.count(k) > 1})]
    v = entry.verification
    if v is not None:
        if v.checked_on > today:
            out.append(issue("verification.checked_on", f"{v.checked_on} is in the future"))
        if v.status == "mismatch":
            out.append(issue("verification.status", "the source page says something else: fix the entry "
                             f"({v.note or 'no note'})"))
        missing = [n for n in _figures(entry) if n not in _normalise_figures(v.excerpt or "")]
        if v.status == "verified" and missing:
            out.append(issue("verification.excerpt", f"the excerpt does not contain {', '.join(missing[:3])} from "
                             "the entry's values; is it the passage that states them?", severity="warning"))
    return out


def _figures(entry: Entry) -> list[str]:
    """The numbers an entry's values state, as digits (20, 1483, 6.5), for the verified-excerpt check."""
    out = []
    for v in entry.values:
        for x in (v.amount, v.min_score):
            if x is not None:
                out.append(f"{x:g}" if not float(x).is_integer() else str(int(x)))
    return out


def _normalise_figures(text: str) -> set[str]:
    import re

    return {m.replace(",", "") for m in re.findall(r"\d[\d,]*(?:\.\d+)?", text)}


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
