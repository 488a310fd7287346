"""Near-duplicate detection with MinHash LSH (datasketch), shared by `data dedup` and `data split`."""
from __future__ import annotations

import hashlib
import re
from typing import Sequence

import numpy as np
from datasketch import MinHash, MinHashLSH

_WORD = re.compile(r"\w+", re.UNICODE)


_P = np.uint64(1_000_003)
_MASK = np.uint64(0xFFFFFFFF)


# ASCII fast path of normalised(): for ASCII text \w is exactly [A-Za-z0-9_], so a byte translation + split gives
# the same string ~3x faster than the regex (measured on the benchmark's answers); other text takes the regex.
_ASCII_WORD = set(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
_ASCII_TABLE = bytes(c if c in _ASCII_WORD else 32 for c in range(256))


def normalised(text: str) -> str:
    """Lower-cased words (``\\w+`` runs) joined by single spaces."""
    if text.isascii():
        return b" ".join(text.lower().encode().translate(_ASCII_TABLE).split()).decode()
    return " ".join(_WORD.findall(text.lower()))


# Tabulation hashing table (byte position in word mod 32 × byte value), fixed seed: deterministic across runs.
_TAB = np.random.default_rng(20250421).integers(0, 2**63, size=(32, 256), dtype=np.uint64)


def _word_hashes(norm: str) -> np.ndarray:
    """One hash per word of a single-space-separated string, fully vectorised (no per-word Python call)."""
    b = np.frombuffer(norm.encode("utf-8"), dtype=np.uint8)
    if b.size == 0:
        return np.zeros(0, dtype=np.uint64)
    is_space = b == 32
    is_start = np.concatenate(([True], is_space[:-1]))
    starts = np.flatnonzero(is_start)
    idx = np.arange(b.size)
    # position of each byte in its word: index minus the latest word start (a running max, linear time)
    pos = idx - np.maximum.accumulate(np.where(is_start, idx, 0))
    contrib = np.where(is_space, np.uint64(0), _TAB[pos % 32, b])
    return np.add.reduceat(contrib, starts) & _MASK


def shingle_hashes(text: str, kind: str = "word", n: int = 3) -> np.ndarray:
    """Distinct 32-bit hashes of the text's shingles, computed with numpy (no per-shingle Python call).

    ``word``: word n-grams, for long texts. ``char``: character n-grams, for short prompts, where one changed word
    (another university's name) should move the similarity only a little. Hashes are deterministic across runs.
    """
    norm = normalised(text)
    if kind == "char":
        units = np.frombuffer(norm.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    else:
        units = _word_hashes(norm)
    if units.size == 0:
        return np.zeros(1, dtype=np.uint64)
    if units.size <= n:
        windows = units[None, :]
    else:
        windows = np.lib.stride_tricks.sliding_window_view(units, n)
    h = np.zeros(windows.shape[0], dtype=np.uint64)
    for k in range(windows.shape[1]):  # polynomial hash of each window, all windows at once
        h = (h * _P + windows[:, k]) & _MASK
    return np.unique(h)


class UnionFind:
    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, i: int, j: int) -> None:
        ri, rj = self.find(i), self.find(j)
        if ri != rj:
            # keep the smaller index as root so "first occurrence wins" is stable
            self.parent[max(ri, rj)] = min(ri, rj)


# ------------------------------------------------------------------------------------- batched, parallel path
#
# Measured on 100k generated conversations (benchmarks/bench_data.py): hashing one document at a time spent most
# of dedup/split in per-document numpy call overhead (~20 small-array calls per document) and in datasketch's
# per-shingle Python loop (update_batch calls the hash function once per value). Below, a chunk of documents is
# hashed with one set of numpy calls, signatures are computed for all of its shingles at once, and chunks run in
# worker processes on every core. The hash functions, permutations and LSH banding are the same as above, so the
# signatures, candidate pairs and clusters are identical (tests/data/test_speed_equivalence.py checks this).

_CHUNK = 256  # documents per batch: ~50 MB of (shingles x permutations) at most for long texts
_PARALLEL_MIN = 4000  # below this many documents a process pool costs more than it saves


def _chunk_shingles(norms: Sequence[str], kind: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct shingle hashes of many normalised texts at once: (hashes, doc offsets), sorted by document.

    Same values as :func:`shingle_hashes` per document (including its special cases: an empty text has the one
    shingle 0; a text of at most ``n`` units has one shingle over all its units).
    """
    if kind == "char":
        unit_arrays = [np.frombuffer(t.encode("utf-32-le"), dtype=np.uint32) for t in norms]
        lengths = np.fromiter((a.size for a in unit_arrays), dtype=np.int64, count=len(norms))
        units = (np.concatenate(unit_arrays).astype(np.uint64) if lengths.sum() else np.zeros(0, np.uint64))
    else:
        lengths = np.fromiter((t.count(" ") + 1 if t else 0 for t in norms), dtype=np.int64, count=len(norms))
        joined = " ".join(t for t in norms if t)
        units = _word_hashes(joined) if joined else np.zeros(0, dtype=np.uint64)
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64)
    total = units.size
    # window hashes of every length 1..n at every position (a window may run past its document; those are
    # never selected below)
    levels = []
    h = np.zeros(total, dtype=np.uint64)
    for k in range(n):
        shifted = np.zeros(total, dtype=np.uint64)
        if total > k:
            shifted[: total - k] = units[k:]
        h = (h * _P + shifted) & _MASK
        levels.append(h)
    doc_of: list[np.ndarray] = []
    hashes: list[np.ndarray] = []
    long_docs = lengths > n
    if long_docs.any():
        # every window of n units that lies inside one document
        counts = np.where(long_docs, lengths - n + 1, 0)
        doc_ids = np.repeat(np.arange(len(norms)), counts)
        first = np.repeat(starts, counts)
        offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        hashes.append(levels[n - 1][first + offsets])
        doc_of.append(doc_ids)
    short = np.flatnonzero((lengths <= n) & (lengths > 0))
    for m in np.unique(lengths[short]) if short.size else []:
        docs = short[lengths[short] == m]
        hashes.append(levels[m - 1][starts[docs]])
        doc_of.append(docs)
    empty = np.flatnonzero(lengths == 0)
    if empty.size:
        hashes.append(np.zeros(empty.size, dtype=np.uint64))
        doc_of.append(empty)
    keys = np.sort((np.concatenate(doc_of).astype(np.uint64) << np.uint64(32)) | np.concatenate(hashes))
    # distinct (document, hash) pairs; sort + neighbour test is ~10x faster here than np.unique's hash table
    keys = keys[np.concatenate(([True], keys[1:] != keys[:-1]))]
    docs = (keys >> np.uint64(32)).astype(np.int64)
    offsets = np.searchsorted(docs, np.arange(len(norms) + 1))
    return keys & _MASK, offsets


def _signatures(hv: np.ndarray, offsets: np.ndarray, num_perm: int, seed: int) -> np.ndarray:
    """MinHash signatures of all documents of a chunk: datasketch's own permutations and scheme, vectorised."""
    proto = MinHash(num_perm=num_perm, seed=seed)
    a, b = proto.permutations
    scheme = getattr(proto, "scheme", "legacy")  # datasketch < 2 has only the legacy scheme
    # permutations x shingles (each row contiguous): the per-document min runs along rows, ~3x faster than
    # reducing over the first axis of shingles x permutations
    if scheme == "legacy":
        phv = np.bitwise_and((a[:, None] * hv[None, :] + b[:, None]) % np.uint64((1 << 61) - 1),
                             np.uint64((1 << 32) - 1))
    else:
        from datasketch.minhash import _SCHEME_DTYPES, _SCHEME_WIDTHS, _fmix

        x = _fmix(hv.astype(_SCHEME_DTYPES[scheme]), _SCHEME_WIDTHS[scheme])
        phv = a[:, None] * x[None, :] + b[:, None]
    sig = np.minimum.reduceat(phv, offsets[:-1], axis=1).T
    return np.ascontiguousarray(np.minimum(sig, proto.hashvalues))  # the initial values, as update_batch does


def _work(args: tuple[int, int, str, int, int, bool]) -> tuple[np.ndarray, list[np.ndarray] | None]:
    start, stop, kind, n, num_perm, keep = args
    norms = [normalised(t) for t in _TEXTS[start:stop]]
    hv, offsets = _chunk_shingles(norms, kind, n)
    sig = _signatures(hv, offsets, num_perm, 1)
    sets = [hv[offsets[d]:offsets[d + 1]] for d in range(len(norms))] if keep else None
    return sig, sets


_TEXTS: Sequence[str] = ()  # the texts of the current call, shared with forked workers without pickling


def workers_available() -> int:
    """Cores this process may use (``SAGPT_WORKERS`` overrides; 1 disables the pool)."""
    import os

    env = os.environ.get("SAGPT_WORKERS")
    if env:
        return max(1, int(env))
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def signatures_and_sets(texts: Sequence[str], kind: str = "word", n: int = 3, num_perm: int = 64,
                        keep_sets: bool = False, workers: int | None = None
                        ) -> tuple[np.ndarray, list[np.ndarray] | None]:
    """(signature matrix [docs x num_perm], per-document sorted distinct shingle hashes if ``keep_sets``)."""
    global _TEXTS
    if not texts:
        return np.zeros((0, num_perm), dtype=np.uint64), [] if keep_sets else None
    workers = workers_available() if workers is None else workers
    jobs = [(i, min(i + _CHUNK, len(texts)), kind, n, num_perm, keep_sets) for i in range(0, len(texts), _CHUNK)]
    _TEXTS = texts
    try:
        if workers > 1 and (len(texts) >= _PARALLEL_MIN or workers_forced()):
            import multiprocessing as mp

            # fork: workers see _TEXTS without copying it through a pipe (~150 MB for 100k conversations)
            with mp.get_context("fork").Pool(workers) as pool:
                results = pool.map(_work, jobs, chunksize=4)
        else:
            results = [_work(j) for j in jobs]
    finally:
        _TEXTS = ()
    sig = np.concatenate([r[0] for r in results])
    sets = [s for r in results for s in r[1]] if keep_sets else None
    return sig, sets


def workers_forced() -> bool:
    import os

    return os.environ.get("SAGPT_WORKERS_FORCE") == "1"  # tests: use the pool even for a small input


def near_duplicate_pairs(texts: Sequence[str], threshold: float, kind: str = "word", n: int = 3,
                         num_perm: int = 64, exact: bool = False, workers: int | None = None
                         ) -> list[tuple[int, int, float]]:
    """Pairs (i, j, Jaccard) with Jaccard ≥ threshold, found via LSH (i < j: i is the earlier document).

    With ``exact`` the LSH runs a little below the threshold to collect candidates and each close candidate's
    true Jaccard is computed on the shingle sets, so the result does not depend on MinHash estimation noise (used
    for short prompts, where sets are small; long texts use the signature estimate to keep memory flat).
    """
    values, sets = signatures_and_sets(texts, kind, n, num_perm, keep_sets=exact, workers=workers)
    # In exact mode LSH runs slightly below the threshold so pairs whose estimate dips under it are still seen.
    # datasketch chooses the bands (b) and rows per band (r) for the threshold; we use its choice and bucket
    # band slices exactly as its in-memory storage does (equal slice bytes = same bucket).
    lsh = MinHashLSH(threshold=max(0.05, threshold - 0.05) if exact else threshold, num_perm=num_perm)
    bands = [(k * lsh.r, (k + 1) * lsh.r) for k in range(lsh.b)]
    tables: list[dict[bytes, list[int]]] = [{} for _ in bands]
    seen_sig: dict[bytes, int] = {}
    pairs: list[tuple[int, int, float]] = []
    rows = np.ascontiguousarray(values)
    for i in range(len(rows)):
        row = rows[i]
        raw = row.tobytes()
        digest = hashlib.blake2b(raw, digest_size=16).digest()
        if digest in seen_sig:  # identical signature: identical shingle set (almost surely); skip LSH work
            pairs.append((seen_sig[digest], i, 1.0))
            continue
        seen_sig[digest] = i
        keys = [raw[s * row.itemsize:e * row.itemsize] for s, e in bands]
        cands: set[int] = set()
        for table, key in zip(tables, keys):
            hit = table.get(key)
            if hit:
                cands.update(hit)
        if cands:
            cand = sorted(cands)
            est = (rows[cand] == row).mean(axis=1)
            for j, jac in zip(cand, est.tolist()):
                if sets is not None and jac >= threshold - 0.15:  # exact only when the estimate is close
                    jac = _jaccard_sorted(sets[i], sets[j])
                if jac >= threshold:
                    pairs.append((j, i, jac))
        for table, key in zip(tables, keys):
            table.setdefault(key, []).append(i)
    return pairs


def _jaccard_sorted(a: np.ndarray, b: np.ndarray) -> float:
    """Jaccard of two sorted distinct-hash arrays: the same value as on Python sets."""
    inter = np.intersect1d(a, b, assume_unique=True).size
    union = a.size + b.size - inter
    return inter / union if union else 1.0


def _jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def clusters_from_pairs(n: int, pairs: Sequence[tuple[int, int, float]]) -> UnionFind:
    uf = UnionFind(n)
    for i, j, _ in pairs:
        uf.union(i, j)
    return uf


def exact_key(text: str) -> bytes:
    return hashlib.blake2b(normalised(text).encode(), digest_size=16).digest()


