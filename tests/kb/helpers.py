"""Knowledge-base files that tests build in tmp_path: one good fact to copy and corrupt, and the writer."""
from __future__ import annotations

import textwrap
from pathlib import Path

# One complete, valid fact; tests derive broken or conflicting variants from it with str.replace.
GOOD_FACT = """\
- id: gb.work.hours
  destination: GB
  topic: work_rights
  statement: Student visa holders can work up to 20 hours per week in term time.
  values:
    - {key: work.term.hours, kind: duration, amount: 20, unit: hours, per: week}
  source_url: https://www.gov.uk/student-visa/what-you-can-and-cannot-do
  source_title: Student visa - GOV.UK
  as_of: 2025-06-01
  review_after: 2026-06-01
"""


def write_kb_file(root: Path, rel: str, text: str) -> Path:
    """Write ``text`` (dedented, so a test may indent it in its source) to ``root/rel``, creating the folders
    (``guidance/x.yaml`` makes a file the loader reads as guidance); returns the path."""
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path
