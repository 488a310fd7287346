"""Hybrid retrieval: ranking, destination handling, the persisted index, and recall@5 on the shipped KB."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from studyabroadgpt.kb.geo import detect_destinations, normalise_destination
from studyabroadgpt.kb.search import Retriever, tokenize
from studyabroadgpt.kb.store import load_kb

QUERIES = Path(__file__).parent / "queries.yaml"


@pytest.mark.parametrize("text,expected", [
    ("Can I work while studying in Toronto?", ["CA"]),
    ("What does Stamp 2 allow?", ["IE"]),
    ("How long is OPT after my F-1 degree?", ["US"]),
    ("Is London more expensive than Manchester?", ["GB"]),
    ("Should I pick Melbourne or Auckland?", ["AU", "NZ"]),
    ("Tell us about yourself", []),  # "us" the pronoun is not the United States
])
def test_detect_destinations(text, expected):
    assert detect_destinations(text) == expected


def test_normalise_destination():
    assert normalise_destination("gb") == "GB"
    assert normalise_destination("UK") == "GB"
    assert normalise_destination("New Zealand") == "NZ"
    assert normalise_destination(None) is None
    with pytest.raises(ValueError, match="unknown destination"):
        normalise_destination("Atlantis")


def test_tokenize_drops_stopwords_and_plurals():
    assert tokenize("How many hours can I work on Student visas?") == ["hour", "work", "student", "visa"]


@pytest.mark.parametrize("query,expected", [
    ("how much money do I need to show for a UK student visa in London", "gb.funds.maintenance"),
    ("part-time job limits for F-1 students", "us.work.on-campus"),
    ("health insurance requirement for studying in Australia", "au.health.oshc"),
    ("Sperrkonto amount", "de.funds.blocked-account"),
    ("can I stay and work in Canada after graduating", "ca.psw.pgwp"),
])
def test_search_finds_the_fact(fixture_retriever, query, expected):
    hits = fixture_retriever.search(query, k=3)
    assert expected in [h.fact.id for h in hits]


def test_search_many_matches_search(fixture_retriever):
    queries = ["IELTS band for a UK degree", "OSHC"]
    batched = fixture_retriever.search_many(queries, k=3)
    single = [fixture_retriever.search(q, k=3) for q in queries]
    assert [[h.fact.id for h in hs] for hs in batched] == [[h.fact.id for h in hs] for hs in single]


def test_destination_filter_and_boost(fixture_retriever):
    hits = fixture_retriever.search("how many hours can I work", k=5, destination="IE")
    assert hits and all(h.fact.destination == "IE" for h in hits)
    boosted = fixture_retriever.search("how many hours can I work in Dublin", k=3)
    assert boosted[0].fact.id == "ie.visa.stamp2"
    assert fixture_retriever.search("", k=5) == []


def test_index_is_persisted_reused_and_rebuilt(fixture_kb, fixture_retriever, tmp_path, monkeypatch):
    index = fixture_retriever.index_dir
    manifest = json.loads((index / "manifest.json").read_text())
    assert manifest["kb_version"] == fixture_kb.version and manifest["n_facts"] == len(fixture_kb.facts)

    # an unchanged KB reuses the embeddings: no encoder call at all
    import studyabroadgpt.kb.search as search

    def fail(_texts):
        raise AssertionError("re-embedded an unchanged knowledge base")

    monkeypatch.setattr(search, "embed", fail)
    again = Retriever.from_kb(fixture_kb, index_dir=index)
    assert again.embeddings.shape == fixture_retriever.embeddings.shape
    monkeypatch.undo()

    # a changed KB (one statement edited) is re-embedded into the same index directory
    text = Path(fixture_kb.paths[0]).read_text().replace("up to 20 hours per week during term time",
                                                         "up to 20 hours a week in term")
    changed_path = tmp_path / "changed.yaml"
    changed_path.write_text(text)
    changed = load_kb(changed_path)
    assert changed.version != fixture_kb.version
    rebuilt = Retriever.from_kb(changed, index_dir=index)
    assert json.loads((index / "manifest.json").read_text())["kb_version"] == changed.version
    assert rebuilt.search("work hours UK", k=1)[0].fact.destination == "GB"


def test_default_index_dir_is_keyed_by_version(fixture_kb, tmp_path, monkeypatch):
    monkeypatch.setenv("STUDYABROADGPT_CACHE", str(tmp_path))
    r = Retriever.from_kb(fixture_kb)
    assert r.index_dir == tmp_path / "kb-index" / fixture_kb.version
    assert (r.index_dir / "embeddings.npy").exists()


def _labelled_queries() -> list[dict]:
    if not QUERIES.exists():
        pytest.skip("tests/kb/queries.yaml has not been written yet")
    return yaml.safe_load(QUERIES.read_text())


def test_recall_and_false_retrieval_on_shipped_kb():
    """The acceptance bar of issue 12: >= 400 labelled queries (facts, soft questions answered by guidance, and
    questions about uncovered destinations/institutions, which must get nothing relevant); recall@5 >= 0.95; with
    the shipped calibrated threshold, most relevant hits are kept and few uncovered questions get a hit.

    Uses the real cache location, so the shipped KB is embedded once per KB version, not once per test run.
    """
    queries = _labelled_queries()
    kb = load_kb()
    retriever = Retriever.from_kb(kb)
    unknown = sorted({i for q in queries for i in q["relevant"] if i not in kb.by_id})
    assert not unknown, f"queries.yaml names entries the KB lacks: {unknown[:5]}"
    covered = [q for q in queries if q["relevant"]]
    uncovered = [q for q in queries if not q["relevant"]]
    soft = [q for q in covered if all(i.startswith("guide.") for i in q["relevant"])]
    assert len(queries) >= 400 and len(soft) >= 150 and len(uncovered) >= 50
    results = retriever.search_many([q["query"] for q in queries], k=5,
                                    destinations=[q.get("destination") for q in queries])
    recalls, kept, misses, false = [], [], [], []
    for q, hits in zip(queries, results):
        got = {h.fact.id for h in hits}
        above = {h.fact.id for h in hits if h.relevance >= retriever.threshold}
        relevant = set(q["relevant"])
        if not relevant:
            if above:
                false.append(q["query"])
            continue
        recalls.append(len(got & relevant) / len(relevant))
        kept.append(len(above & relevant) / len(relevant))
        if not got & relevant:
            misses.append(q["query"])
    recall = sum(recalls) / len(recalls)
    kept_recall = sum(kept) / len(kept)
    false_rate = len(false) / len(uncovered)
    assert recall >= 0.95, f"recall@5 = {recall:.3f}; no relevant entry in the top 5 for: {misses[:10]}"
    assert kept_recall >= 0.85, f"kept recall@5 = {kept_recall:.3f} at threshold {retriever.threshold}"
    assert false_rate <= 0.10, f"false retrieval {false_rate:.3f} on uncovered questions: {false[:10]}"
