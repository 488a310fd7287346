"""A generated corpus of corrupted knowledge bases (issue 14): every one must end in a clear KBError that names the
file (and, where there is one, the entry and field), through every path that loads a KB — never a traceback,
and never a destination that silently disappears."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from studyabroadgpt.cli import app
from studyabroadgpt.kb.schema import KBError
from studyabroadgpt.kb.store import check_kb, load_kb

from .helpers import GOOD_FACT

GUIDE = textwrap.dedent("""\
    - id: any.cv.format
      kind: guidance
      destination: any
      topic: cv_resume
      title: Formatting an academic CV
      statement: An academic CV lists education, research, publications and skills, most recent first.
      steps: [List your degrees with dates and grades, most recent first.]
      source_url: https://www.ucas.com/undergraduate/applying-to-university/writing-your-personal-statement
      source_title: Writing your personal statement - UCAS
      as_of: 2025-06-01
      review_after: 2026-06-01
    """)


def _sub(old: str, new: str, base: str = GOOD_FACT) -> str:
    assert old in base, old
    return base.replace(old, new, 1)


# (name, file text or bytes, what the message must say besides the file name)
CORRUPT: list[tuple[str, str | bytes, str]] = [
    ("impossible-month", _sub("as_of: 2025-06-01", "as_of: 2024-13-45"), "as_of"),
    ("impossible-day", _sub("as_of: 2025-06-01", "as_of: 2025-02-30"), "as_of"),
    ("impossible-review", _sub("review_after: 2026-06-01", "review_after: 2026-00-10"), "review_after"),
    ("datetime-as-of", _sub("as_of: 2025-06-01", "as_of: 2025-06-01 12:30:00"), "as_of"),
    ("words-date", _sub("as_of: 2025-06-01", "as_of: last spring"), "as_of"),
    ("review-before-as-of", _sub("review_after: 2026-06-01", "review_after: 2024-01-01"), "review_after"),
    ("empty-file", "", "holds no entries"),
    ("comments-only", "# United Kingdom\n# (facts moved elsewhere)\n", "holds no entries"),
    ("whitespace-only", "\n   \n\n", "holds no entries"),
    ("tab-only", "\t\n", "YAML"),
    ("null-document", "~\n", "holds no entries"),
    ("empty-list", "[]\n", "holds no entries"),
    ("empty-facts-mapping", "defaults: {destination: GB}\nfacts: []\n", "holds no entries"),
    ("mapping-without-list", "destination: GB\ntopic: work_rights\n", "top level"),
    ("both-lists", "facts: []\nguidance: []\n", "top level"),
    ("unknown-top-key", "facts:\n" + textwrap.indent(GOOD_FACT, "  ") + "extra: 1\n", "unknown top-level"),
    ("defaults-not-mapping", "defaults: [1]\nfacts:\n" + textwrap.indent(GOOD_FACT, "  "), "defaults"),
    ("scalar-document", "just some text\n", "top level"),
    ("list-of-strings", "- one\n- two\n", "expected a mapping"),
    ("list-of-lists", "- [1, 2]\n", "expected a mapping"),
    ("unclosed-bracket", _sub("statement: Student", "statement: [Student"), "invalid YAML"),
    ("bad-indentation", _sub("  destination: GB", " destination: GB"), "invalid YAML"),
    ("tab-indent", _sub("  topic: work_rights", "\ttopic: work_rights"), "invalid YAML"),
    ("deep-nesting", "- " + "[" * 100_000 + "\n", "YAML"),
    ("not-utf8", GOOD_FACT.encode("utf-8").replace(b"Student visa holders", b"\xff\xfe visa holders"), "UTF-8"),
    ("missing-id", _sub("- id: gb.work.hours\n  destination", "- destination"), "id"),
    ("bad-id", _sub("id: gb.work.hours", "id: 'GB Work Hours!'"), "id"),
    ("id-with-markup", _sub("id: gb.work.hours", "id: '[/]x'"), "id"),
    ("unknown-destination", _sub("destination: GB", "destination: Atlantis"), "destination"),
    ("unknown-topic", _sub("topic: work_rights", "topic: weather"), "topic"),
    ("short-statement", _sub("statement: Student visa holders can work up to 20 hours per week in term time.",
                             "statement: short"), "statement"),
    ("http-url", _sub("https://", "http://"), "source_url"),
    ("not-a-url", _sub("source_url: https://www.gov.uk/student-visa/what-you-can-and-cannot-do",
                       "source_url: gov dot uk"), "source_url"),
    ("typo-field", _sub("review_after:", "review_afer:"), "review_afer"),
    ("value-missing-amount", _sub("{key: work.term.hours, kind: duration, amount: 20, unit: hours, per: week}",
                                  "{key: work.term.hours, kind: duration, unit: hours}"), "values"),
    ("value-bad-kind", _sub("kind: duration,", "kind: vibes,"), "values"),
    ("values-not-list", _sub("  values:\n    - {key: work.term.hours, kind: duration, amount: 20, unit: hours, "
                             "per: week}", "  values: 20"), "values"),
    ("huge-int", _sub("amount: 20", "amount: " + "9" * 5000), "number too long"),
    ("duplicate-id", GOOD_FACT + GOOD_FACT, "duplicate entry id"),
    ("unknown-kind", _sub("- id: gb.work.hours\n", "- id: gb.work.hours\n  kind: rumour\n"), "kind"),
    ("verification-not-mapping", _sub("review_after: 2026-06-01", "review_after: 2026-06-01\n  verification: yes"),
     "verification"),
    ("verification-bad-method", _sub("review_after: 2026-06-01", "review_after: 2026-06-01\n  verification: "
                                     "{status: verified, checked_on: 2025-06-02, method: vibes, excerpt: work up to 20 "
                                     "hours per week}"), "method"),
    ("verification-bad-date", _sub("review_after: 2026-06-01", "review_after: 2026-06-01\n  verification: "
                                   "{status: verified, checked_on: 2025-99-02, excerpt: work up to 20 hours per "
                                   "week}"), "checked_on"),
    ("verification-bad-status", _sub("review_after: 2026-06-01", "review_after: 2026-06-01\n  verification: "
                                     "{status: probably, checked_on: 2025-06-02, note: looked fine}"), "status"),
    ("guidance-no-advice", GUIDE.replace("  steps: [List your degrees with dates and grades, most recent first.]\n",
                                         ""), "steps or watch_out"),
    ("guidance-bad-topic", GUIDE.replace("topic: cv_resume", "topic: horoscope"), "topic"),
    ("guidance-bad-audience", GUIDE.replace("destination: any", "destination: any\n  audience: [toddlers]"),
     "audience"),
    ("guidance-impossible-date", GUIDE.replace("as_of: 2025-06-01", "as_of: 2025-13-01"), "as_of"),
    ("guidance-title-missing", GUIDE.replace("  title: Formatting an academic CV\n", ""), "title"),
    ("anchor-bomb", "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n", "top level"),
]
JSONL_CORRUPT: list[tuple[str, str, str]] = [
    ("jsonl-empty", "\n\n", "holds no entries"),
    ("jsonl-bad-json", '{"id": "x",\n', "invalid JSON"),
    ("jsonl-deep", "[" * 100_000 + "\n", "JSON"),
    ("jsonl-huge-int", '{"id": "x", "n": ' + "9" * 5000 + "}\n", "JSON"),
    ("jsonl-impossible-date", json.dumps({**yaml.safe_load(GOOD_FACT)[0], "as_of": "2024-13-45"}, default=str) + "\n",
     "as_of"),
]


def _cases():
    for name, text, needle in CORRUPT:
        yield pytest.param(name, "gb.yaml", text, needle, id=name)
    for name, text, needle in JSONL_CORRUPT:
        yield pytest.param(name, "gb.jsonl", text, needle, id=name)


def test_corpus_is_large_enough():
    assert len(CORRUPT) + len(JSONL_CORRUPT) >= 40


def _write_kb(tmp_path: Path, filename: str, text: str | bytes) -> Path:
    kb = tmp_path / "kb"
    kb.mkdir()
    # a good file beside the broken one: the broken one must still be named, not hidden by the good one
    (kb / "ok.yaml").write_text(GOOD_FACT.replace("gb.work.hours", "gb.other").replace("work.term.hours", "w.other"))
    target = kb / filename
    target.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return kb


@pytest.mark.parametrize("name,filename,text,needle", list(_cases()))
def test_corrupt_kb_gives_a_clear_error(tmp_path, name, filename, text, needle):
    kb = _write_kb(tmp_path, filename, text)
    with pytest.raises(KBError) as err:
        load_kb(kb)
    msg = str(err.value)
    assert filename in msg and needle in msg, msg
    assert "Traceback" not in msg and len(msg) < 1200
    entries, issues = check_kb(kb)
    errors = [i for i in issues if i.severity == "error"]
    assert errors and any(filename in i.file and needle in str(i) for i in errors), [str(i) for i in issues]
    assert "gb.other" in {e.id for e in entries}  # the good file is still read and counted


@pytest.mark.parametrize("name,filename,text,needle", [c for c in _cases() if c.id in
                                                        {"impossible-month", "comments-only", "id-with-markup",
                                                         "deep-nesting", "not-utf8", "jsonl-huge-int",
                                                         "guidance-impossible-date"}])
def test_corrupt_kb_through_the_cli(tmp_path, name, filename, text, needle):
    """validate, stale and search (which load the KB) exit with a usage error and a one-line message."""
    kb = _write_kb(tmp_path, filename, text)
    runner = CliRunner(env={"COLUMNS": "200"})
    res = runner.invoke(app, ["kb", "validate", str(kb)])
    assert res.exit_code == 1 and filename in res.output and res.exception is None or \
        isinstance(res.exception, SystemExit), res.output
    for args in (["kb", "stale", "--kb", str(kb)], ["audit", str(kb / "ok.yaml"), "--kb", str(kb)]):
        res = runner.invoke(app, args)
        assert isinstance(res.exception, (SystemExit, KBError)), res.exception
        if isinstance(res.exception, KBError):  # the top-level handler turns it into one line; check its text
            assert filename in str(res.exception) and needle in str(res.exception)


def test_impossible_date_in_a_real_process(tmp_path):
    """The issue's reproduction: `sagpt kb validate` and `kb stale` on `as_of: 2024-13-45` — no traceback."""
    kb = _write_kb(tmp_path, "gb.yaml", _sub("as_of: 2025-06-01", "as_of: 2024-13-45"))
    for args in (["kb", "validate", str(kb)], ["kb", "stale", "--kb", str(kb)]):
        proc = subprocess.run([sys.executable, "-m", "studyabroadgpt.cli", *args], capture_output=True, text=True,
                              timeout=120)
        out = proc.stdout + proc.stderr
        assert proc.returncode in (1, 2) and "Traceback" not in out, out
        assert "gb.yaml" in out and "as_of" in out and ("month" in out or "date" in out), out
