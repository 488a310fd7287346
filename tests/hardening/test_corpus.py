"""Issue 14's corpus: >= 1,000 generated bad inputs through the real CLI, none may end in a traceback, lose a
record silently, hang, or be rejected without naming the file (see corpus.py for what each family holds)."""
from __future__ import annotations

import pytest

from .corpus import FAMILIES, build_cases, make_runner, run_case, summarise


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory, monkeypatch_module):
    root = tmp_path_factory.mktemp("corpus")
    # crash logs of any internal error go beside the inputs, not into the user's cache
    monkeypatch_module.setenv("STUDYABROADGPT_LOG_DIR", str(root / "logs"))
    monkeypatch_module.chdir(root)  # default quarantine files land here
    runner = make_runner()
    return {name: [run_case(c, runner) for c in build_cases(root, [name])] for name in FAMILIES}


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_family_has_no_traceback_loss_hang_or_unclear_message(outcomes, name):
    bad = [o for o in outcomes[name] if o.kind != "ok"]
    assert not bad, "\n".join(f"{o.kind} {o.case.name}: {o.detail}" for o in bad[:20])


def test_corpus_size(outcomes):
    data = summarise(outcomes["data"])
    config = summarise(outcomes["config"])
    assert data["inputs"] >= 1000 and config["inputs"] >= 40
    # the accounting check really ran: most data cases carry an expected record count
    counted = [o for o in outcomes["data"] if o.case.records is not None and o.case.kept_file is not None]
    assert len(counted) >= 800
