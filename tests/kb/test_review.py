"""The adviser's review report: queue order, summary figures, files written."""
from __future__ import annotations

import datetime as dt
import json

from typer.testing import CliRunner

from studyabroadgpt.cli import app
from studyabroadgpt.kb.review import review_queue, review_summary, write_review
from studyabroadgpt.kb.store import load_kb

FACTS = """\
- id: gb.a.mismatch
  destination: GB
  topic: student_visa
  statement: An entry whose source page now says something else.
  source_url: https://www.gov.uk/student-visa
  source_title: Student visa - GOV.UK
  as_of: 2025-06-01
  review_after: 2027-06-01
  verification: {status: mismatch, checked_on: 2025-07-01, note: the page now gives another figure}
- id: gb.b.stale
  destination: GB
  topic: proof_of_funds
  statement: An entry past its review date that was verified once.
  source_url: https://www.gov.uk/student-visa/money
  source_title: Student visa - money - GOV.UK
  as_of: 2024-06-01
  review_after: 2025-06-01
  verification: {status: verified, checked_on: 2024-07-01, excerpt: "the page states this entry"}
- id: gb.c.unverified-policy
  destination: GB
  topic: work_rights
  statement: A policy-sensitive entry never checked against its source.
  source_url: https://www.gov.uk/student-visa/what-you-can-and-cannot-do
  source_title: Student visa - GOV.UK
  as_of: 2025-06-01
  review_after: 2027-06-01
- id: us.d.unverified
  destination: US
  topic: scholarships
  statement: An ordinary entry never checked against its source.
  source_url: https://educationusa.state.gov/your-5-steps-us-study
  source_title: EducationUSA
  as_of: 2025-06-01
  review_after: 2027-06-01
- id: us.e.fine
  destination: US
  topic: scholarships
  statement: A verified entry with plenty of time before review.
  source_url: https://educationusa.state.gov/your-5-steps-us-study
  source_title: EducationUSA
  as_of: 2025-06-01
  review_after: 2028-06-01
  verification: {status: verified, checked_on: 2025-07-01, excerpt: "the page states this entry too"}
"""


def _kb(tmp_path):
    p = tmp_path / "kb.yaml"
    p.write_text(FACTS)
    return load_kb(p), p


def test_queue_order(tmp_path):
    kb, _ = _kb(tmp_path)
    queue = review_queue(kb, dt.date(2026, 1, 1))
    assert [(it.entry.id, it.reason) for it in queue] == [
        ("gb.a.mismatch", "mismatch"), ("gb.b.stale", "stale"), ("gb.c.unverified-policy", "unverified-policy"),
        ("us.d.unverified", "unverified")]
    assert [it.rank for it in queue] == [1, 2, 3, 4]


def test_summary_and_files(tmp_path):
    kb, path = _kb(tmp_path)
    s = review_summary(kb, dt.date(2026, 1, 1))
    assert s["entries"] == 5 and s["verified"] == 2 and s["verified_share"] == 0.4 and s["stale"] == 1
    assert s["by_destination"]["GB"]["topics"] == {"proof_of_funds": 1, "student_visa": 1, "work_rights": 1}
    assert s["verification_status"] == {"mismatch": 1, "verified": 2, "never checked": 2}
    files = write_review(kb, tmp_path / "out", dt.date(2026, 1, 1))
    assert json.loads(files["json"].read_text())["queue"][0]["id"] == "gb.a.mismatch"
    md = files["markdown"].read_text()
    assert "Review first" in md and "gb.a.mismatch" in md and "40%" in md
    assert files["plot"].stat().st_size > 10_000
    res = CliRunner(env={"COLUMNS": "200"}).invoke(app, ["kb", "review", "--kb", str(path), "--today", "2026-01-01",
                                                        "--out", str(tmp_path / "cli")])
    assert res.exit_code == 0, res.output
    assert "2 (40%) verified" in res.output and "mismatch" in res.output
    assert (tmp_path / "cli" / "review.png").exists()
