"""Reading and writing conversation files.

Readers never raise on a bad record: they yield a :class:`RawRecord` that carries either the decoded object or
the :class:`Problem` that stopped it, with the file and line, so the caller can quarantine it. Only a source that
cannot be opened at all (missing file, unknown extension, unreadable Parquet) raises :class:`DataError`.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from ..utils import atomic_write_jsonl
from .schema import ROLE_ALIASES, Conversation, Turn

SUPPORTED_SUFFIXES = (".jsonl", ".json", ".parquet", ".csv")


class DataError(Exception):
    """A data source that cannot be read at all (as opposed to one bad record inside it)."""


@dataclass
class Problem:
    file: str
    line: int | None
    field: str
    message: str
    code: str = "invalid"

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.field}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "field": self.field, "code": self.code,
                "message": self.message}


@dataclass
class RawRecord:
    file: str
    line: int
    data: dict[str, Any] | None = None
    raw_text: str | None = None  # kept for records that never decoded, so quarantine loses nothing
    problems: list[Problem] = field(default_factory=list)

    def original(self) -> Any:
        return self.data if self.data is not None else self.raw_text


# --------------------------------------------------------------------------------------------- reading


def looks_like_hub_id(source: str) -> bool:
    parts = source.split("/")
    return len(parts) == 2 and all(parts) and not Path(source).exists() and "." not in parts[-1][-8:]


def iter_raw(source: str | Path, split: str | None = None) -> Iterator[RawRecord]:
    """Yield every record of a file, a directory of files, or a Hub dataset id, in order."""
    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in SUPPORTED_SUFFIXES and p.is_file())
        if not files:
            raise DataError(f"{path}: directory holds no {', '.join(SUPPORTED_SUFFIXES)} files")
        for f in files:
            yield from iter_raw(f)
        return
    if not path.exists():
        if looks_like_hub_id(str(source)):
            yield from _iter_hub(str(source), split)
            return
        raise DataError(f"{source}: no such file or directory (nor a Hub dataset id of the form owner/name)")
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        yield from _iter_jsonl(path)
    elif suffix == ".json":
        yield from _iter_json(path)
    elif suffix in (".parquet", ".csv"):
        yield from _iter_table(path)
    else:
        raise DataError(f"{path}: unsupported file type {suffix!r}; use one of {', '.join(SUPPORTED_SUFFIXES)}")


def _iter_jsonl(path: Path) -> Iterator[RawRecord]:
    name = str(path)
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue  # blank lines are formatting, not records
            try:
                text = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                yield RawRecord(name, lineno, raw_text=raw.decode("utf-8", errors="replace").rstrip("\n"),
                                problems=[Problem(name, lineno, "<line>", f"not valid UTF-8 ({exc.reason} at byte "
                                                  f"{exc.start})", "encoding")])
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                yield RawRecord(name, lineno, raw_text=text.rstrip("\n"),
                                problems=[Problem(name, lineno, "<line>", f"invalid JSON: {exc.msg} at column "
                                                  f"{exc.colno}", "json")])
                continue
            yield _as_record(name, lineno, obj)


def _iter_json(path: Path) -> Iterator[RawRecord]:
    name = str(path)
    try:
        obj = json.loads(path.read_bytes().decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from exc
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}: invalid JSON: {exc.msg} at column {exc.colno}") from exc
    if isinstance(obj, dict):
        # {"data": [...]} / {"train": [...]} containers, or a single record
        lists = [v for v in obj.values() if isinstance(v, list) and v and isinstance(v[0], dict)]
        if detect_format(obj) is None and len(lists) == 1:
            obj = lists[0]
        else:
            obj = [obj]
    if not isinstance(obj, list):
        raise DataError(f"{path}: top level must be a list of records, got {type(obj).__name__}")
    for i, item in enumerate(obj, start=1):
        yield _as_record(name, i, item)


def _iter_table(path: Path) -> Iterator[RawRecord]:
    import pandas as pd

    name = str(path)
    try:
        if path.suffix.lower() == ".csv":
            df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
            first_line = 2  # header is line 1
        else:
            df = pd.read_parquet(path)
            first_line = 1
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from exc
    except Exception as exc:  # pyarrow / pandas raise many types for unreadable files
        raise DataError(f"{path}: cannot read table: {exc}") from exc
    for i, row in enumerate(df.to_dict(orient="records")):
        yield _as_record(name, i + first_line, {k: _plain(v) for k, v in row.items()})


def _iter_hub(dataset_id: str, split: str | None) -> Iterator[RawRecord]:
    import datasets

    try:
        ds = datasets.load_dataset(dataset_id, split=split)
    except Exception as exc:
        raise DataError(f"{dataset_id}: cannot load Hub dataset: {exc}") from exc
    splits = ds.items() if isinstance(ds, datasets.DatasetDict) else [(split or "train", ds)]
    for split_name, part in splits:
        for i, row in enumerate(part, start=1):
            yield _as_record(f"{dataset_id}[{split_name}]", i, {k: _plain(v) for k, v in row.items()})


def _plain(v: Any) -> Any:
    """numpy / pyarrow values from Parquet → plain Python; JSON strings inside CSV cells → objects."""
    if hasattr(v, "tolist"):
        v = v.tolist()
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, list):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, str) and v[:1] in "[{":
        try:
            return json.loads(v)
        except json.JSONDecodeError:
            return v
    return v


def _as_record(name: str, line: int, obj: Any) -> RawRecord:
    if not isinstance(obj, dict):
        return RawRecord(name, line, raw_text=json.dumps(obj, ensure_ascii=False),
                         problems=[Problem(name, line, "<record>", f"expected a JSON object, got "
                                           f"{type(obj).__name__}", "type")])
    return RawRecord(name, line, data=obj)


# --------------------------------------------------------------------------------------------- parsing


def detect_format(obj: dict[str, Any]) -> str | None:
    if "conversations" in obj:
        return "sharegpt"
    if "messages" in obj:
        return "messages"
    if "instruction" in obj and "output" in obj:
        return "alpaca"
    return None


@dataclass
class LooseTurn:
    """A turn as found in the file, before roles are checked (``role`` is the raw string)."""

    role: str
    text: str
    field: str  # e.g. "conversations[3]" – where in the record it came from
    provenance: list[str] = field(default_factory=list)


@dataclass
class LooseConversation:
    id: str
    turns: list[LooseTurn]
    topic: str | None
    source: str | None
    metadata: dict[str, Any]


def parse_loose(rec: RawRecord) -> tuple[LooseConversation | None, list[Problem]]:
    """Map a decoded record of any supported format onto loose turns; structural problems are returned."""
    if rec.data is None:
        return None, list(rec.problems)
    obj, f, line = rec.data, rec.file, rec.line
    fmt = detect_format(obj)
    problems: list[Problem] = []
    turns: list[LooseTurn] = []
    if fmt is None:
        return None, [Problem(f, line, "<record>", "unknown format: expected 'conversations' (ShareGPT), "
                              "'messages' (OpenAI) or 'instruction'+'output' (Alpaca); found keys "
                              f"{sorted(obj)[:8]}", "format")]
    if fmt == "alpaca":
        prompt = _text(obj.get("instruction"))
        extra = _text(obj.get("input"))
        if extra.strip():
            prompt = f"{prompt}\n\n{extra}"
        if obj.get("system"):
            turns.append(LooseTurn("system", _text(obj["system"]), "system"))
        turns.append(LooseTurn("user", prompt, "instruction"))
        turns.append(LooseTurn("assistant", _text(obj.get("output")), "output"))
    else:
        key = "conversations" if fmt == "sharegpt" else "messages"
        role_key, text_key = ("from", "value") if fmt == "sharegpt" else ("role", "content")
        items = obj[key]
        if not isinstance(items, list):
            return None, [Problem(f, line, key, f"must be a list of turns, got {type(items).__name__}", "type")]
        for i, t in enumerate(items):
            where = f"{key}[{i}]"
            if not isinstance(t, dict):
                problems.append(Problem(f, line, where, f"turn must be an object, got {type(t).__name__}", "type"))
                continue
            # tolerate the other format's keys inside a turn (mixed exports are common)
            role = t.get(role_key, t.get("role", t.get("from")))
            text = t.get(text_key, t.get("content", t.get("value")))
            if role is None:
                problems.append(Problem(f, line, f"{where}.{role_key}", "missing role", "missing"))
                continue
            if text is not None and not isinstance(text, str):
                problems.append(Problem(f, line, f"{where}.{text_key}", f"text must be a string, got "
                                        f"{type(text).__name__}", "type"))
                continue
            prov = t.get("provenance") or []
            turns.append(LooseTurn(str(role), text or "", where, [str(x) for x in prov] if isinstance(prov, list)
                                   else [str(prov)]))
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    conv_id = obj.get("id", meta.get("id"))
    conv_id = str(conv_id) if conv_id not in (None, "") else f"{Path(f).stem}-{line}"
    topic = obj.get("topic", meta.get("topic"))
    source = obj.get("source", meta.get("source"))
    extra_meta = {k: v for k, v in obj.items() if k not in {"conversations", "messages", "instruction", "input",
                                                             "output", "system", "id", "topic", "source",
                                                             "metadata"}}
    meta = {**meta, **extra_meta}
    return LooseConversation(conv_id, turns, str(topic) if topic else None, str(source) if source else None,
                             meta), problems


def _text(v: Any) -> str:
    return "" if v is None else v if isinstance(v, str) else str(v)


def normalise_role(role: str) -> str | None:
    return ROLE_ALIASES.get(role.strip().lower())


def to_conversation(loose: LooseConversation) -> Conversation:
    """Loose → strict schema. Callers make sure every role normalises (validate/clean do)."""
    return Conversation(
        id=loose.id,
        turns=[Turn(role=normalise_role(t.role), text=t.text, provenance=t.provenance) for t in loose.turns],
        topic=loose.topic,
        source=loose.source,
        metadata=loose.metadata,
    )


def read_conversations(source: str | Path, split: str | None = None) -> tuple[list[Conversation], list[dict]]:
    """Read and validate a source: (valid conversations, quarantine rows). Nothing is dropped silently."""
    from .validate import validate_record

    good, bad = [], []
    for rec in iter_raw(source, split=split):
        conv, problems = validate_record(rec)
        if conv is None:
            bad.append(quarantine_row(rec, problems))
        else:
            good.append(conv)
    return good, bad


def quarantine_row(rec: RawRecord, problems: Iterable[Problem]) -> dict[str, Any]:
    return {"file": rec.file, "line": rec.line, "reasons": [p.to_dict() for p in problems],
            "record": rec.original()}


# --------------------------------------------------------------------------------------------- writing


def write_conversations(convs: Iterable[Conversation], path: str | Path, fmt: str = "sharegpt") -> Path:
    """Write to ``.jsonl`` (``fmt`` = sharegpt | messages), ``.parquet``, or a DatasetDict directory."""
    path = Path(path)
    convs = list(convs)
    rows = [c.to_sharegpt() if fmt == "sharegpt" else c.to_messages() for c in convs]
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return atomic_write_jsonl(path, rows)
    if suffix == ".parquet":
        import pandas as pd

        from ..utils import atomic_write_bytes
        import io as _io

        buf = _io.BytesIO()
        # metadata dicts vary per row; store them as JSON text so the Parquet schema stays stable
        table = pd.DataFrame([{**r, "metadata": json.dumps(r.get("metadata", {}), ensure_ascii=False)}
                              for r in rows])
        table.to_parquet(buf, index=False)
        return atomic_write_bytes(path, buf.getvalue())
    raise DataError(f"{path}: unsupported output type {suffix!r}; use .jsonl or .parquet "
                    "(or write_dataset_dict for a DatasetDict)")


def write_dataset_dict(splits: dict[str, list[Conversation]], path: str | Path, fmt: str = "messages") -> Path:
    """Save splits as a ``datasets.DatasetDict`` on disk (``load_from_disk`` reads it back)."""
    import datasets

    from ..utils import atomic_dir

    dd = datasets.DatasetDict({
        name: datasets.Dataset.from_list([
            {**(c.to_messages() if fmt == "messages" else c.to_sharegpt()),
             "metadata": json.dumps(c.metadata, ensure_ascii=False), "topic": c.topic or "",
             "source": c.source or ""}
            for c in convs
        ])
        for name, convs in splits.items()
    })
    with atomic_dir(path) as tmp:
        dd.save_to_disk(str(tmp))
    return Path(path)
