"""The batched, multi-process near-duplicate search gives exactly what the per-document one gave (issue 16).

The reference below is the previous implementation, kept verbatim in spirit: one datasketch ``MinHash`` per
document fed through ``update_batch``, and datasketch's ``MinHashLSH`` query-then-insert.
"""
from __future__ import annotations

import hashlib
import random

import numpy as np
import pytest
from datasketch import MinHash, MinHashLSH

from studyabroadgpt.data.dedup import conversation_text, dedup, prompt_text
from studyabroadgpt.data.near_dup import near_duplicate_pairs, shingle_hashes
from studyabroadgpt.data.schema import Conversation, Turn
from studyabroadgpt.data.split import split


def reference_pairs(texts, threshold, kind="word", n=3, num_perm=64, exact=False):
    hashed = [shingle_hashes(t, kind, n) for t in texts]
    sets = [set(h.tolist()) for h in hashed] if exact else None
    proto = MinHash(num_perm=num_perm, seed=1)
    sigs = []
    for hv in hashed:
        m = MinHash(num_perm=num_perm, seed=1, hashfunc=lambda x: x, permutations=proto.permutations,
                    scheme=proto.scheme)
        m.update_batch(hv.tolist())
        sigs.append(m)
    values = np.stack([m.hashvalues for m in sigs])
    lsh = MinHashLSH(threshold=max(0.05, threshold - 0.05) if exact else threshold, num_perm=num_perm)
    seen, pairs = {}, []
    for i, m in enumerate(sigs):
        digest = hashlib.blake2b(np.asarray(m.hashvalues).tobytes(), digest_size=16).digest()
        if digest in seen:
            pairs.append((seen[digest], i, 1.0))
            continue
        seen[digest] = i
        cands = lsh.query(m)
        if cands:
            est = (values[cands] == values[i]).mean(axis=1)
            for j, jac in zip(cands, est.tolist()):
                if sets is not None and jac >= threshold - 0.15:
                    a, b = sets[i], sets[j]
                    jac = len(a & b) / len(a | b) if a or b else 1.0
                if jac >= threshold:
                    pairs.append((j, i, jac))
        lsh.insert(i, m)
    return pairs


UNIS = ["Oxford", "Cambridge", "UCL", "Toronto", "McGill", "Melbourne", "TU Munich", "Trinity College Dublin"]
WORDS = "visa funds tuition rent deposit offer transcript interview deadline scholarship insurance loan".split()


def generated(n=700, seed=7):
    rng = random.Random(seed)
    convs = []
    for i in range(n):
        r = rng.random()
        if r < 0.1 and convs:  # exact duplicate
            src = rng.choice(convs)
            convs.append(src.model_copy(update={"id": f"c{i}"}))
            continue
        if r < 0.25 and convs:  # near duplicate: another university, one word changed
            src = rng.choice(convs)
            turns = [Turn(role=t.role, text=t.text.replace(rng.choice(UNIS), rng.choice(UNIS)) + rng.choice(
                ["", " Thanks!", " ok"])) for t in src.turns]
            convs.append(Conversation(id=f"c{i}", turns=turns, topic=src.topic))
            continue
        uni = rng.choice(UNIS)
        q = f"What {rng.choice(WORDS)} do I need at {uni}?" if r < 0.9 else rng.choice(["?", "", "ok", "Ü ß"])
        a = " ".join(rng.choices(WORDS, k=rng.choice([0, 1, 2, 3, 40, 120])))
        convs.append(Conversation(id=f"c{i}", turns=[Turn(role="user", text=q), Turn(role="assistant", text=a)],
                                  topic=rng.choice(["visa", "money", "tests"])))
    return convs


@pytest.fixture(scope="module")
def convs():
    return generated()


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("mode", [("word", 3, 0.8, False), ("char", 5, 0.6, True), ("word", 3, 0.5, False)])
def test_pairs_identical_to_the_per_document_implementation(convs, monkeypatch, workers, mode):
    kind, n, threshold, exact = mode
    monkeypatch.setenv("SAGPT_WORKERS_FORCE", "1")  # use the process pool even for 700 texts
    texts = [prompt_text(c) if kind == "char" else conversation_text(c) for c in convs]
    new = near_duplicate_pairs(texts, threshold, kind, n, exact=exact, workers=workers)
    old = reference_pairs(texts, threshold, kind, n, exact=exact)
    assert len(old) > 50  # the set really has near duplicates
    assert sorted(new) == sorted(old)


def reference_dedup(convs, threshold=0.8, num_perm=64):
    """dedup as it was: exact keys from a second normalisation in the parent, then the per-document LSH loop."""
    from studyabroadgpt.data.near_dup import clusters_from_pairs, exact_key

    texts = [conversation_text(c) for c in convs]
    seen, removed, survivors = {}, [], []
    for i, text in enumerate(texts):
        key = exact_key(text)
        if key in seen:
            removed.append({"id": convs[i].id, "kept_id": convs[seen[key]].id, "reason": "exact", "jaccard": 1.0})
        else:
            seen[key] = i
            survivors.append(i)
    pairs = reference_pairs([texts[i] for i in survivors], threshold, "word", 3, num_perm)
    best_jac = {}
    for a, b, jac in pairs:
        best_jac[b] = max(best_jac.get(b, 0.0), jac)
    uf = clusters_from_pairs(len(survivors), pairs)
    kept = []
    for local, i in enumerate(survivors):
        root = uf.find(local)
        if root == local:
            kept.append(convs[i])
        else:
            removed.append({"id": convs[i].id, "kept_id": convs[survivors[root]].id, "reason": "near",
                            "jaccard": round(best_jac.get(local, threshold), 3)})
    return kept, removed


def reference_leak_groups(convs, prompt_threshold=0.6, text_threshold=0.8, num_perm=64):
    """split's groups as they were: the two pair searches one after the other, through the per-document loop."""
    from studyabroadgpt.data.near_dup import UnionFind

    pairs = reference_pairs([prompt_text(c) for c in convs], prompt_threshold, "char", 5, num_perm, exact=True)
    pairs += reference_pairs([conversation_text(c) for c in convs], text_threshold, "word", 3, num_perm)
    uf = UnionFind(len(convs))
    for i, j, _ in pairs:
        uf.union(i, j)
    return uf, pairs


@pytest.mark.parametrize("workers", ["1", "2"])
def test_dedup_and_split_results_unchanged(convs, monkeypatch, workers):
    import studyabroadgpt.data.split as split_mod

    monkeypatch.setenv("SAGPT_WORKERS", workers)
    monkeypatch.setenv("SAGPT_WORKERS_FORCE", "1")
    new_d, new_s = dedup(convs), split(convs, test_size=0.2, seed=3)
    old_kept, old_removed = reference_dedup(convs)
    monkeypatch.setattr(split_mod, "leak_groups", reference_leak_groups)
    old_s = split(convs, test_size=0.2, seed=3)
    assert [c.id for c in new_d.kept] == [c.id for c in old_kept]
    assert new_d.removed == old_removed and new_d.exact_removed > 10 and new_d.near_removed > 10
    assert [c.id for c in new_s.train] == [c.id for c in old_s.train]
    assert [c.id for c in new_s.test] == [c.id for c in old_s.test]
    assert new_s.cross_pairs == old_s.cross_pairs == 0 and new_s.groups == old_s.groups


def test_word_units_equal_the_per_byte_hashes():
    """The cached per-word hashes and the fused normalise+split give the per-byte tabulation's values."""
    from studyabroadgpt.data.near_dup import _chunk_units, _word_hashes, exact_key, normalised

    texts = ["", "Ünïcode café — naïve", "plain words, and MORE words!", "a", "tab\tand\nnewline 123_x",
             "Ω≈ç√ 中文 text", " lead and trail  "]
    texts += [conversation_text(c) for c in generated(60, seed=2)]
    units, lengths, keys = _chunk_units(texts, "word", keys=True)
    want = [_word_hashes(normalised(t)) if normalised(t) else np.zeros(0, np.uint64) for t in texts]
    assert lengths.tolist() == [w.size for w in want]
    assert np.array_equal(units, np.concatenate(want))
    assert keys == [exact_key(t) for t in texts]


def test_jaccard_bound_is_never_below_the_true_jaccard(convs):
    """The bucket-count bound that decides which prompt pairs get an exact Jaccard never misses a pair."""
    from studyabroadgpt.data.near_dup import _exact_jaccards, _jaccard_upper_bounds, sketch

    texts = [prompt_text(c) for c in convs] + ["", "a", "ab", "x" * 3000, "x" * 3000 + " y"]
    sets = sketch(texts, "char", 5, keep_sets=True, workers=1).sets
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, len(texts), 20_000), rng.integers(0, len(texts), 20_000)
    a, b = np.concatenate([a, np.arange(len(texts))]), np.concatenate([b, np.arange(len(texts))])  # and a == b
    exact, bound = _exact_jaccards(sets, a, b), _jaccard_upper_bounds(sets, a, b)
    assert (bound >= exact).all()
    assert (exact >= 0.6).sum() > 100 and (bound < 0.6).sum() > 1000  # both sides of the threshold are seen


@pytest.mark.parametrize("num_perm", [64, 36, 256])
def test_low_byte_prefilter_counts_what_it_says(num_perm):
    """The candidates' first filter counts equal low bytes exactly, which is never below the equal values."""
    from studyabroadgpt.data.near_dup import _low_byte_matches, _low_bytes

    rng = np.random.default_rng(1)
    rows = rng.integers(0, 2**32, size=(300, num_perm), dtype=np.uint64).astype(np.uint32)
    rows[150:] = rows[:150]  # copies, partly changed: every count from 0 to num_perm occurs
    rows[150:] = np.where(rng.random((150, num_perm)) < rng.random((150, 1)), rows[150:], rows[150:] ^ 256)
    later, earlier = rng.integers(0, 300, 5000), rng.integers(0, 300, 5000)
    later[:150], earlier[:150] = np.arange(150, 300), np.arange(150)
    keys = (later.astype(np.uint64) << np.uint64(32)) | earlier.astype(np.uint64)
    got = _low_byte_matches(_low_bytes(rows), keys, num_perm)
    assert got.tolist() == np.count_nonzero((rows[later] & 255) == (rows[earlier] & 255), axis=1).tolist()
    assert (got >= np.count_nonzero(rows[later] == rows[earlier], axis=1)).all()
    assert (got[:150] > np.count_nonzero(rows[later[:150]] == rows[earlier[:150]], axis=1)).any()


def test_word_cache_cleared_when_full_still_hashes_every_word(monkeypatch):
    """A chunk that overflows the per-process word cache: the cache starts again and holds the chunk's words
    (before, the words it already held were lost with the clear and the lookup raised KeyError)."""
    import studyabroadgpt.data.near_dup as nd

    monkeypatch.setattr(nd, "_WORD_HASH_CACHE", {})
    monkeypatch.setattr(nd, "_WORD_CACHE_MAX", 5)
    nd._hash_words([b"alpha", b"beta", b"gamma"])
    words = [b"alpha", b"delta", b"eps", b"zeta", b"alpha"]
    assert nd._hash_words(words).tolist() == [int(nd._word_hashes(w.decode())[0]) for w in words]


def test_row_groups_by_hash_equal_the_lexsort_groups(monkeypatch):
    """Hash-ordered groups hold the same rows as the lexsort's, in index order; a collision falls back."""
    import studyabroadgpt.data.near_dup as nd

    rng = np.random.default_rng(2)
    mat = rng.integers(0, 4, size=(3000, 5), dtype=np.uint64).astype(np.uint32)  # many repeated rows

    def partition(order, group):
        out = {}
        for pos, g in zip(order.tolist(), group.tolist()):
            out.setdefault(g, []).append(pos)
        assert all(m == sorted(m) for m in out.values())  # index order within a group
        return sorted(out.values())

    want = partition(*nd._row_groups_lexsort(mat))
    assert len(want) < 1024 and partition(*nd._row_groups(mat)) == want
    monkeypatch.setattr(nd, "_ROW_MIX", np.zeros_like(nd._ROW_MIX))  # every row hashes alike
    assert partition(*nd._row_groups(mat)) == want
