"""Calibrated relevance: the model, the out-of-scope rule, persistence, and Retriever.relevant on the fixture KB."""
from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from typer.testing import CliRunner

from studyabroadgpt.cli import app
from studyabroadgpt.kb.relevance import (FEATURES, Calibration, LabelledQuery, QueryContext, choose_threshold,
                                         features, fit, load_calibration, load_queries, metrics_at)


def _ctx(out_of_scope=False, covered=None):
    dense = np.array([0.8, 0.5, 0.2, 0.1])
    sparse = np.array([6.0, 0.0, 2.0, 0.0])
    return QueryContext(dense, sparse, covered or [], out_of_scope=out_of_scope, uncovered_named=out_of_scope)


def test_features_shape_and_meaning():
    ctx = _ctx(covered=["GB"])
    x = dict(zip(FEATURES, features(ctx, 0, 1, "GB", "fact")))
    assert len(features(ctx, 0, 1, "GB", "fact")) == len(FEATURES)
    assert x["cosine"] == pytest.approx(0.8) and x["cosine_gap"] == 0 and x["bm25_rel"] == 1 and x["top1"] == 1
    assert x["dest_match"] == 1 and x["dest_mismatch"] == 0 and x["dense_inv_rank"] == 1
    y = dict(zip(FEATURES, features(ctx, 1, 2, "CA", "guidance")))
    assert y["dest_mismatch"] == 1 and y["bm25_inv_rank"] == 0 and y["guidance"] == 1
    z = dict(zip(FEATURES, features(_ctx(), 2, 3, "any", "guidance")))
    assert z["dest_any"] == 1 and z["dest_none"] == 0


def _synthetic(n=60, seed=0):
    """Rows where relevant hits have high cosine and rank 1: a model must learn that."""
    rng = np.random.default_rng(seed)
    X, y, qi, ranks, queries = [], [], [], [], []
    for q in range(n):
        uncovered = q % 5 == 0
        queries.append(LabelledQuery(f"q{q}", set() if uncovered else {f"e{q}"}))
        ctx = _ctx(out_of_scope=False)
        for r in range(1, 6):
            good = (r == 1) and not uncovered
            ctx.dense[0] = rng.uniform(0.6, 0.9) if good else rng.uniform(0.1, 0.45)
            X.append(features(ctx, 0, r, "any", "guidance"))
            y.append(int(good))
            qi.append(q)
            ranks.append(r)
    return np.array(X), np.array(y), np.array(qi), np.array(ranks), queries


def test_fit_separates_and_threshold_balances():
    X, y, qi, ranks, queries = _synthetic()
    cal = fit(X, y, qi, ranks, queries)
    probs = np.array([cal.relevance(x) for x in X])
    assert probs[y == 1].min() > probs[y == 0].max() - 0.2
    m = metrics_at(probs, y, qi, ranks, queries, cal.threshold)
    assert m["kept_recall_at_5"] >= 0.95 and m["false_retrieval_rate"] <= 0.1 and m["recall_at_5"] == 1.0
    assert 0 < choose_threshold(probs, y, qi, ranks, queries) < 1


def test_out_of_scope_rule_zeroes_country_entries_only():
    cal = Calibration([0.0] * len(FEATURES), 5.0, 0.5)  # would say 0.99 for anything
    ctx = _ctx(out_of_scope=True)
    assert cal.relevance(features(ctx, 0, 1, "GB", "fact")) == 0.0
    assert cal.relevance(features(ctx, 0, 1, "any", "guidance")) > 0.9


def test_save_load_and_feature_mismatch(tmp_path, caplog):
    cal = Calibration([0.1] * len(FEATURES), -1.0, 0.33, {"queries": 3})
    path = cal.save(tmp_path / "cal.json")
    again = load_calibration(path)
    assert again.threshold == pytest.approx(0.33) and again.meta["queries"] == 3
    data = json.loads(path.read_text())
    data["features"] = ["cosine"]
    path.write_text(json.dumps(data))
    with caplog.at_level(logging.WARNING):
        assert load_calibration(path) is None
    assert "do not match" in caplog.text
    assert load_calibration(tmp_path / "missing.json") is None


def test_shipped_calibration_is_loaded(fixture_retriever):
    cal = fixture_retriever.calibration
    assert cal is not None and 0.05 <= fixture_retriever.threshold <= 0.9
    assert cal.meta["queries"] >= 400


def test_relevant_on_fixture_kb(fixture_retriever):
    hits = fixture_retriever.search("how many hours can I work in Dublin on Stamp 2", k=3)
    assert hits[0].fact.id == "ie.visa.stamp2" and 0.0 <= hits[0].relevance <= 1.0
    assert hits[0].relevance >= max(h.relevance for h in hits[1:])
    kept = fixture_retriever.relevant("how many hours can I work in Dublin on Stamp 2", k=3)
    assert kept and kept[0].fact.id == "ie.visa.stamp2"
    assert all(h.relevance >= fixture_retriever.threshold for h in kept)
    # a question about a destination the KB does not cover gets nothing relevant, though search returns 5 hits
    assert len(fixture_retriever.search("student visa requirements for Uzbekistan", k=5)) == 5
    assert fixture_retriever.relevant("student visa requirements for Uzbekistan", k=5) == []
    assert fixture_retriever.relevant("admission requirements for the University of Dhaka", k=5) == []


def test_bm25_scores_is_public_and_aligned(fixture_retriever):
    scores = fixture_retriever.bm25_scores("Stamp 2 Ireland")
    assert scores.shape == (len(fixture_retriever.entries),)
    assert fixture_retriever.entries[int(np.argmax(scores))].destination == "IE"


def test_load_queries_kinds(tmp_path):
    p = tmp_path / "q.yaml"
    p.write_text("- {query: a, relevant: [gb.x]}\n- {query: b, relevant: [guide.any.y]}\n- {query: c, relevant: []}\n")
    assert [q.kind for q in load_queries(p)] == ["fact", "guidance", "uncovered"]
    p.write_text("- {query: a}\n")
    with pytest.raises(ValueError, match="item 1"):
        load_queries(p)


def test_calibrate_cli_on_fixture_kb(fixture_kb_path, tmp_path):
    q = tmp_path / "q.yaml"
    q.write_text("\n".join([
        "- {query: how many hours can i work in dublin, relevant: [ie.visa.stamp2]}",
        "- {query: sperrkonto amount for germany, relevant: [de.funds.blocked-account]}",
        "- {query: health insurance for australia student visa, relevant: [au.health.oshc]}",
        "- {query: can i work in canada after graduating, relevant: [ca.psw.pgwp]}",
        "- {query: money to show for a uk student visa in london, relevant: [gb.funds.maintenance]}",
        "- {query: student visa for uzbekistan, relevant: []}",
        "- {query: universities in bangladesh, relevant: []}",
        "- {query: is dhaka safe, relevant: []}",
    ]) + "\n")
    out = tmp_path / "cal.json"
    res = CliRunner(env={"COLUMNS": "200"}).invoke(app, ["kb", "calibrate", "--queries", str(q), "--kb",
                                                        str(fixture_kb_path), "--out", str(out), "--folds", "2"])
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert data["features"] == list(FEATURES) and data["queries"] == 8 and 0 < data["threshold"] < 1
    assert "held out" in res.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("- {query: x, relevant: [no.such.entry]}\n")
    res = CliRunner().invoke(app, ["kb", "calibrate", "--queries", str(bad), "--kb", str(fixture_kb_path),
                                   "--out", str(out)])
    assert res.exit_code == 2 and "no.such.entry" in res.output
