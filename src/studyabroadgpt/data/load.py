"""The one validated read of a conversations source: every reader of the package goes through :func:`load_valid`.

``io`` reads records and writes files; ``validate`` and ``clean`` judge one record at a time; this module joins
them: it reads a source (file, directory or Hub id), judges every record, and returns the kept conversations and
the quarantine rows side by side, so that records in = kept + quarantined holds for every caller (the CLI,
training, evaluation, the quickstart). Writing the quarantine file is part of the read when a path is given, so
no caller can forget it.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..utils import atomic_write_jsonl
from .clean import clean_record
from .io import SkippedFile, gc_paused, iter_raw, quarantine_row
from .schema import Conversation
from .validate import DEFAULT_MAX_CHARS, validate_record


@dataclass
class Loaded:
    """What a validated read found. ``records == len(conversations) + len(quarantined)`` always holds."""

    source: str
    conversations: list[Conversation]
    quarantined: list[dict]  # rows {file, line, reasons, record}: the record as found, nothing lost
    records: int
    skipped: list[SkippedFile] = field(default_factory=list)  # files of a directory that were not read, and why
    changes: Counter = field(default_factory=Counter)  # what cleaning fixed (empty unless ``clean=True``)
    quarantine_path: Path | None = None  # where the quarantine rows were written, if anywhere

    @property
    def rejected(self) -> int:
        return len(self.quarantined)


def default_quarantine_path(source: str | Path) -> Path:
    """``quarantine/<stem>.quarantine.jsonl`` (a Hub id ``owner/name`` becomes ``owner__name``)."""
    source = str(source)
    stem = Path(source).stem if Path(source).exists() else source.replace("/", "__")
    return Path("quarantine") / f"{stem}.quarantine.jsonl"


def load_valid(source: str | Path, *, split: str | None = None, max_chars: int = DEFAULT_MAX_CHARS,
               clean: bool = False, quarantine: str | Path | bool | None = None,
               progress: Callable[[int], None] | None = None) -> Loaded:
    """Read ``source`` and judge every record; the one validated-read path of the package.

    source:     a .jsonl/.ndjson/.jsonlines(.gz)/.json/.parquet/.csv file, a directory of them, or a Hub id.
    split:      the split to read (a Hub dataset, or one key of a ``{"train": [...], "test": [...]}`` JSON file).
    max_chars:  records longer than this are rejected (``too_long``).
    clean:      run :func:`clean.clean_record` (NFC, control characters, role aliases, merged turns…) before
                judging, and count its fixes in ``Loaded.changes``; otherwise records are judged as they stand.
    quarantine: a path to write the rejected rows to (JSONL, atomically; only when there are any), ``True`` for
                :func:`default_quarantine_path`, ``None``/``False`` to leave writing to the caller.
    progress:   called with the number of records read so far, every 500 records.

    Raises :class:`io.DataError` only when the source cannot be read at all (missing, unsupported, unparsable
    as a whole); a bad record never raises, it is quarantined with its file, line, field and reason.
    """
    changes: Counter = Counter()
    skipped: list[SkippedFile] = []
    good: list[Conversation] = []
    bad: list[dict] = []
    n = 0
    with gc_paused():  # ~2.5x on 100k records: see io.gc_paused
        for rec in iter_raw(source, split=split, skipped=skipped):
            n += 1
            conv, problems = clean_record(rec, changes, max_chars) if clean else validate_record(rec, max_chars)
            if conv is None:
                bad.append(quarantine_row(rec, problems))
            else:
                good.append(conv)
            if progress is not None and n % 500 == 0:
                progress(n)
    if n != len(good) + len(bad):  # the promise every command prints; a break here is a bug, not bad data
        raise RuntimeError(f"{source}: {n} records read but {len(good)} kept + {len(bad)} quarantined")
    q_path = None
    if quarantine and bad:
        q_path = default_quarantine_path(source) if quarantine is True else Path(quarantine)
        atomic_write_jsonl(q_path, bad)
    return Loaded(str(source), good, bad, n, skipped, changes, q_path)
