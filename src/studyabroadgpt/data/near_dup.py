"""Near-duplicate detection with MinHash LSH (datasketch), shared by `data dedup` and `data split`."""
from __future__ import annotations

import contextlib
import hashlib
import itertools
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Sequence

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


# Word hashes by word, not by byte: the per-byte tabulation in _word_hashes cost ~60 ns a byte (24 of the 38 ms a
# 256-document chunk took, loaded machine), while a chunk holds only a few thousand distinct words, most of them
# seen in earlier chunks. So each worker keeps word -> hash (computed by _word_hashes itself, so the values are
# the same) and a chunk's words are looked up in one list comprehension.
_WORD_HASH_CACHE: dict[bytes, int] = {}
_WORD_CACHE_MAX = 2_000_000  # distinct words kept per process (~200 MB at most); cleared when full


def _doc_words(text: str) -> list[bytes]:
    """The words of :func:`normalised` as UTF-8 bytes: ``b" ".join(_doc_words(t)).decode() == normalised(t)``."""
    if text.isascii():
        return text.lower().encode().translate(_ASCII_TABLE).split()
    return [w.encode() for w in _WORD.findall(text.lower())]


def _hash_words(words: list[bytes]) -> np.ndarray:
    """:func:`_word_hashes` of each word, through the per-process cache."""
    cache = _WORD_HASH_CACHE
    try:
        # map over the bound method: no Python frame per word (a list comprehension here was ~1/4 of a chunk)
        return np.fromiter(map(cache.__getitem__, words), dtype=np.uint64, count=len(words))
    except KeyError:
        new = list(set(words).difference(cache))
        if len(cache) + len(new) > _WORD_CACHE_MAX:
            cache.clear()
            new = list(set(words))
        cache.update(zip(new, _word_hashes(b" ".join(new).decode()).tolist()))
        return np.fromiter(map(cache.__getitem__, words), dtype=np.uint64, count=len(words))


def _chunk_units(texts: Sequence[str], kind: str, keys: bool = False
                 ) -> tuple[np.ndarray, np.ndarray, list[bytes] | None]:
    """(units of all texts concatenated, units per text, each text's :func:`exact_key` if ``keys``).

    Units are what shingles are made of: code points of the normalised text (``char``) or word hashes (``word``).
    """
    if kind == "char":
        norms = [normalised(t) for t in texts]
        unit_arrays = [np.frombuffer(t.encode("utf-32-le"), dtype=np.uint32) for t in norms]
        lengths = np.fromiter((a.size for a in unit_arrays), dtype=np.int64, count=len(norms))
        units = (np.concatenate(unit_arrays).astype(np.uint64) if lengths.sum() else np.zeros(0, np.uint64))
        digests = [_blake(t.encode()) for t in norms] if keys else None
        return units, lengths, digests
    docs = [_doc_words(t) for t in texts]
    lengths = np.fromiter(map(len, docs), dtype=np.int64, count=len(docs))
    flat = list(itertools.chain.from_iterable(docs))
    units = _hash_words(flat) if flat else np.zeros(0, np.uint64)
    return units, lengths, ([_blake(b" ".join(d)) for d in docs] if keys else None)


def _chunk_shingles(units: np.ndarray, lengths: np.ndarray, n: int, distinct: bool = True
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Shingle hashes of many documents at once: (hashes, doc offsets), in document order; each document's
    distinct hashes, sorted, when ``distinct``, else every window's (repeats included: a MinHash signature is
    the same either way, and the sort that makes them distinct was ~15% of a chunk's time).

    Same values as :func:`shingle_hashes` per document (including its special cases: an empty text has the one
    shingle 0; a text of at most ``n`` units has one shingle over all its units).
    """
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64)
    total = units.size
    # window hashes of every length 1..n at every position (a window may run past its document; those are
    # never selected below)
    levels = np.zeros((n, max(total, 1)), dtype=np.uint64)
    h = np.zeros(total, dtype=np.uint64)
    for k in range(n):
        shifted = np.zeros(total, dtype=np.uint64)
        if total > k:
            shifted[: total - k] = units[k:]
        h = (h * _P + shifted) & _MASK
        levels[k, :total] = h
    # a document of more than n units has one window per n-unit run; a shorter one the one window of all its
    # units (level = its length); an empty one the hash 0
    counts = np.maximum(lengths - n + 1, 1)
    ends = np.cumsum(counts)
    within = np.arange(int(ends[-1]) if ends.size else 0) - np.repeat(ends - counts, counts)
    level = np.repeat(np.clip(lengths, 1, n) - 1, counts)
    hashes = levels[level, np.repeat(starts, counts) + within]
    hashes[np.repeat(lengths == 0, counts)] = 0
    offsets = np.concatenate(([0], ends)).astype(np.int64)
    if not distinct:
        return hashes, offsets
    keys = np.sort((np.repeat(np.arange(len(lengths), dtype=np.uint64), counts) << np.uint64(32)) | hashes)
    # distinct (document, hash) pairs; sort + neighbour test is ~10x faster here than np.unique's hash table
    keys = keys[np.concatenate(([True], keys[1:] != keys[:-1]))]
    docs = (keys >> np.uint64(32)).astype(np.int64)
    offsets = np.searchsorted(docs, np.arange(len(lengths) + 1))
    return keys & _MASK, offsets


_SIG_BLOCK = 4096  # shingles per block: 64 permutations x 4096 x 4 bytes = 1 MiB, this CPU's L2 per core


@lru_cache(maxsize=8)
def _proto(num_perm: int, seed: int) -> MinHash:
    return MinHash(num_perm=num_perm, seed=seed)


def _signatures(hv: np.ndarray, offsets: np.ndarray, num_perm: int, seed: int) -> np.ndarray:
    """MinHash signatures of all documents of a chunk: datasketch's own permutations and scheme, vectorised."""
    proto = _proto(num_perm, seed)
    a, b = proto.permutations
    scheme = getattr(proto, "scheme", "legacy")  # datasketch < 2 has only the legacy scheme
    # permutations x shingles (each row contiguous): the per-document min runs along rows, ~3x faster than
    # reducing over the first axis of shingles x permutations
    if scheme == "legacy":
        phv = np.bitwise_and((a[:, None] * hv[None, :] + b[:, None]) % np.uint64((1 << 61) - 1),
                             np.uint64((1 << 32) - 1))
        sig = np.minimum.reduceat(phv, offsets[:-1], axis=1).T
        return np.ascontiguousarray(np.minimum(sig, proto.hashvalues))  # the initial values, as update_batch does
    from datasketch.minhash import _SCHEME_DTYPES, _SCHEME_WIDTHS, _fmix

    x = _fmix(hv.astype(_SCHEME_DTYPES[scheme]), _SCHEME_WIDTHS[scheme])
    a, b = a[:, None], b[:, None]
    n_docs = len(offsets) - 1
    sig = np.empty((n_docs, num_perm), dtype=np.result_type(a, x))
    # by blocks of whole documents that fit in L2: the whole chunk's permutations x shingles (~17 MB for 256
    # answers) went through memory three times (product, sum, min)
    ends = np.searchsorted(offsets, offsets[:-1] + _SIG_BLOCK, side="right") - 1
    d = 0
    while d < n_docs:
        e = max(int(ends[d]), d + 1)
        lo, hi = offsets[d], offsets[e]
        phv = a * x[None, lo:hi]
        phv += b
        sig[d:e] = np.minimum.reduceat(phv, offsets[d:e] - lo, axis=1).T
        d = e
    return np.minimum(sig, proto.hashvalues)  # the initial values, as update_batch does


def _work(args: tuple[Sequence[str], str, int, int, bool, bool]
          ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, list[bytes] | None]:
    texts, kind, n, num_perm, keep, keys = args
    units, lengths, digests = _chunk_units(texts, kind, keys)
    hv, offsets = _chunk_shingles(units, lengths, n, distinct=keep)
    sig = _signatures(hv, offsets, num_perm, 1)
    # the sets go back flat (one array + offsets): pickling 256 small arrays per chunk cost more than hashing
    return sig, (hv.astype(np.uint32) if keep else None), (offsets if keep else None), digests


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


class ShingleSets:
    """Every document's sorted distinct shingle hashes, stored flat: ``values[offsets[d]:offsets[d + 1]]``."""

    def __init__(self, values: np.ndarray, offsets: np.ndarray):
        self.values, self.offsets = values, offsets

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, d: int) -> np.ndarray:
        return self.values[self.offsets[d]:self.offsets[d + 1]]

    def bucket_counts(self, buckets: int) -> np.ndarray:
        """Documents x ``buckets`` (a power of 2) counts of each document's shingles per hash bucket."""
        cached = getattr(self, "_counts", None)
        if cached is not None and cached.shape[1] == buckets:
            return cached
        shift = np.uint32(32 - (buckets.bit_length() - 1))  # the top log2(buckets) bits of the mixed hash
        sizes = np.diff(self.offsets)
        # uint16 unless one document has more shingles than that (no count may wrap: it would break the bound)
        out = np.empty((len(self), buckets), dtype=np.uint16 if sizes.max(initial=0) < 1 << 16 else np.uint32)
        step = 1 << 13  # documents per block: the bincount's int64 counts stay at 8 MB
        for d in range(0, len(self), step):
            e = min(d + step, len(self))
            docs = np.repeat(np.arange(e - d), sizes[d:e])
            # Fibonacci hashing: the top bits of value x odd constant spread the polynomial hashes evenly
            mixed = (self.values[self.offsets[d]:self.offsets[e]].astype(np.uint32) * np.uint32(0x9E3779B1)) >> shift
            out[d:e] = np.bincount(docs * buckets + mixed, minlength=(e - d) * buckets).reshape(-1, buckets)
        self._counts = out
        return out

    def matrix(self):
        """Documents × shingles 0/1 matrix (CSR, sorted column indices: what scipy's fast merge needs)."""
        from scipy.sparse import csr_matrix

        # the 32-bit hash values are the column indices themselves (no remapping sort needed)
        data = np.ones(self.values.size, dtype=np.int8)
        return csr_matrix((data, self.values.astype(np.int64), self.offsets.astype(np.int64)),
                          shape=(len(self), 1 << 32))


@dataclass
class Sketches:
    """What one pass over a list of texts computes: MinHash signatures [docs x num_perm], optionally each
    document's distinct shingle hashes (for exact Jaccards) and each text's :func:`exact_key`."""

    signatures: np.ndarray
    sets: ShingleSets | None = None
    keys: list[bytes] | None = None


def sketch(texts: Sequence[str], kind: str = "word", n: int = 3, num_perm: int = 64, keep_sets: bool = False,
           exact_keys: bool = False, workers: int | None = None) -> Sketches:
    """Signatures (and sets / exact keys when asked) of all texts, in chunks on every core for large inputs.

    ``exact_keys`` lets `dedup` take its exact-duplicate keys from the same pass: it used to normalise every
    text a second time in the parent process for them (~15% of the stage, on one core).
    """
    pool = open_pool(len(texts), workers)
    with pool or contextlib.nullcontext():
        return start_sketch(texts, kind, n, num_perm, keep_sets, exact_keys, pool)()


def open_pool(n_texts: int, workers: int | None = None):
    """A process pool for sketching ``n_texts`` texts, or None where one process is cheaper (use it in ``with``)."""
    workers = workers_available() if workers is None else workers
    if workers > 1 and (n_texts >= _PARALLEL_MIN or workers_forced()):
        import multiprocessing as mp

        # forkserver, not fork: a forked worker's RSS counts every page of the parent (100k conversations,
        # ~1.4 GB), so the stage's summed RSS was ~3x the parent's; forkserver workers start from a small server
        # process and get their 256 texts per job through the pipe (~0.6 MB, far cheaper than hashing them).
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload([__name__])
        return ctx.Pool(workers)
    return None


def start_sketch(texts: Sequence[str], kind: str = "word", n: int = 3, num_perm: int = 64,
                 keep_sets: bool = False, exact_keys: bool = False, pool=None) -> Callable[[], Sketches]:
    """Hand the texts' chunks to ``pool`` now and return the call that collects them as :class:`Sketches`.

    With a pool the workers start at once, so the caller can do other work meanwhile (``split`` finds the
    prompts' pairs in this process while the workers hash the whole texts); without one the work runs when the
    returned function is called.
    """
    if not texts:
        return lambda: Sketches(np.zeros((0, num_perm), dtype=np.uint64),
                                ShingleSets(np.zeros(0, np.uint32), np.zeros(1, np.int64)) if keep_sets else None,
                                [] if exact_keys else None)
    jobs = ((texts[i:i + _CHUNK], kind, n, num_perm, keep_sets, exact_keys) for i in range(0, len(texts), _CHUNK))
    running = pool.imap(_work, jobs, chunksize=2) if pool is not None else None

    def collect() -> Sketches:
        results = list(running) if running is not None else [_work(j) for j in jobs]
        sig = np.concatenate([r[0] for r in results])
        keys = [k for r in results for k in r[3]] if exact_keys else None
        if not keep_sets:
            return Sketches(sig, None, keys)
        values = np.concatenate([r[1] for r in results])
        sizes = np.concatenate([np.diff(r[2]) for r in results])
        return Sketches(sig, ShingleSets(values, np.concatenate(([0], np.cumsum(sizes))).astype(np.int64)), keys)

    return collect


def workers_forced() -> bool:
    import os

    return os.environ.get("SAGPT_WORKERS_FORCE") == "1"  # tests: use the pool even for a small input


_PAIR_CHUNK = 1 << 16  # candidate pairs estimated per batch: 2 x 64k x 64 uint32 signature values, 32 MB


def near_duplicate_pairs(texts: Sequence[str], threshold: float, kind: str = "word", n: int = 3,
                         num_perm: int = 64, exact: bool = False, workers: int | None = None
                         ) -> list[tuple[int, int, float]]:
    """Pairs (j, i, Jaccard) with Jaccard ≥ threshold, found via LSH (j < i: j is the earlier document).

    With ``exact`` the LSH runs a little below the threshold to collect candidates and each close candidate's
    true Jaccard is computed on the shingle sets, so the result does not depend on MinHash estimation noise (used
    for short prompts, where sets are small; long texts use the signature estimate to keep memory flat).

    The result is that of the per-document query-then-insert loop over datasketch's ``MinHashLSH`` (kept as the
    reference in tests/data/test_speed_equivalence.py): a document whose signature equals an earlier one's is
    paired with that first one at 1.0 and never inserted; every other document is compared with each earlier
    inserted document it shares a band bucket with. Here the same pairs come from whole-array operations: band
    buckets by sorting, candidate pairs enumerated per bucket, estimates and exact Jaccards in batches. On 89k
    benchmark prompts the loop spent ~100 s in 756k one-pair ``intersect1d`` calls and ~150 s in Python
    band bookkeeping (under cProfile, load 11); this path does the same work in a few seconds.
    """
    sk = sketch(texts, kind, n, num_perm, keep_sets=exact, workers=workers)
    return pairs_from_sketch(sk.signatures, sk.sets, threshold, num_perm)


def pairs_from_sketch(values: np.ndarray, sets: ShingleSets | None, threshold: float, num_perm: int = 64
                      ) -> list[tuple[int, int, float]]:
    """:func:`near_duplicate_pairs` from signatures already computed (exact Jaccards when ``sets`` is given)."""
    exact = sets is not None
    n_docs = len(values)
    if n_docs == 0:
        return []
    rows = np.ascontiguousarray(values)
    # In exact mode LSH runs slightly below the threshold so pairs whose estimate dips under it are still seen.
    # datasketch chooses the bands (b) and rows per band (r) for the threshold; we use its choice and bucket
    # band slices exactly as its in-memory storage does (equal slice bytes = same bucket).
    lsh = MinHashLSH(threshold=max(0.05, threshold - 0.05) if exact else threshold, num_perm=num_perm)
    # 1. identical signatures: each later copy pairs with the first at 1.0 and takes no further part
    first_of, is_first = _first_occurrence(rows)
    copies = np.flatnonzero(~is_first)
    copy_keys = (copies.astype(np.uint64) << np.uint64(32)) | first_of[copies].astype(np.uint64)
    # 2. candidate pairs: documents (first occurrences only) sharing a bucket in any band, each band's estimated
    # from the signatures and dropped where the estimate is below what could be kept, before the bands are
    # joined. 89k benchmark prompts give 16.1M candidates of which 0.76M pass (129 are kept): joining and sorting
    # all of them first (~0.4 GB of keys, indices and estimates at split's memory peak) cost more than estimating
    # a pair twice where two bands hold it (0.7% of them).
    inserted = np.flatnonzero(is_first)
    floor = threshold - 0.15 if exact else threshold  # lowest estimate that goes on
    low = _low_bytes(rows)
    passed = []
    for k in range(lsh.b):
        band = _bucket_pairs(np.ascontiguousarray(rows[inserted, k * lsh.r:(k + 1) * lsh.r]), inserted)
        for s in range(0, band.size, _PAIR_CHUNK):
            chunk = band[s:s + _PAIR_CHUNK]
            passed.append(chunk[_low_byte_matches(low, chunk, rows.shape[1]) / rows.shape[1] >= floor])
        del band
    cand_keys = _distinct(np.concatenate(passed), in_place=True) if passed else np.zeros(0, np.uint64)
    del passed
    cand_keys = cand_keys[_estimates(rows, cand_keys) >= floor]  # the low bytes' count is never below the true one
    later = (cand_keys >> np.uint64(32)).astype(np.intp)
    earlier = (cand_keys & _MASK).astype(np.intp)
    # 3. every candidate that passed: its estimate, or in exact mode its true Jaccard
    if exact:
        # the true Jaccard only where a cheap upper bound reaches the threshold: 42k of the 756k prompt pairs
        # that pass the estimate (the sparse products for all of them took 2.3 s, the bound 0.3 s)
        jac = np.zeros(cand_keys.size)
        maybe = np.flatnonzero(_jaccard_upper_bounds(sets, later, earlier) >= threshold)
        jac[maybe] = _exact_jaccards(sets, later[maybe], earlier[maybe])
    else:
        jac = _estimates(rows, cand_keys)
    keep = jac >= threshold
    keys = np.concatenate([copy_keys, cand_keys[keep]])
    jacs = np.concatenate([np.ones(copies.size), jac[keep]])
    order = np.argsort(keys, kind="stable")  # by later document, then earlier: the loop's order
    keys, jacs = keys[order], jacs[order]
    return list(zip((keys & _MASK).astype(np.int64).tolist(), (keys >> np.uint64(32)).astype(np.int64).tolist(),
                    jacs.tolist()))


def _low_bytes(rows: np.ndarray) -> np.ndarray:
    """The low byte of every signature value, each row padded with zeros to whole 8-byte words."""
    low = np.zeros((rows.shape[0], -(-rows.shape[1] // 8) * 8), dtype=np.uint8)
    low[:, :rows.shape[1]] = rows
    return low


_BYTE_SUM = np.uint64(0x0101010101010101)


def _low_byte_matches(low: np.ndarray, keys: np.ndarray, n_values: int) -> np.ndarray:
    """How many of the ``n_values`` signature values of each pair have equal low bytes: at least the number of
    equal values (equal values have equal low bytes), so a filter on it drops no pair the full estimate keeps.

    A quarter of the bytes of the full comparison, and the per-pair count by word sums instead of
    ``count_nonzero`` over 64 booleans: 16M candidate prompt pairs in 2.2 s against 4.8 s (loaded machine).
    """
    later, earlier = (keys >> np.uint64(32)).astype(np.intp), (keys & _MASK).astype(np.intp)
    eq = low[later] == low[earlier]
    if low.shape[1] > 248:  # the byte sum below would not fit in one byte
        return np.count_nonzero(eq[:, :n_values], axis=1)
    # eight 0/1 bytes per word; the word sum holds per-byte counts, and the multiply adds its eight bytes into
    # the top one. The zero padding past n_values compares equal: subtracted.
    total = (eq.view(np.uint64).sum(axis=1, dtype=np.uint64) * _BYTE_SUM) >> np.uint64(56)
    return total.astype(np.int64) - (low.shape[1] - n_values)


def _estimates(rows: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """MinHash Jaccard estimates of the pairs ``later << 32 | earlier`` (the share of equal signature values)."""
    out = np.empty(keys.size, dtype=np.float64)
    for s in range(0, keys.size, _PAIR_CHUNK):
        k = keys[s:s + _PAIR_CHUNK]
        later, earlier = (k >> np.uint64(32)).astype(np.intp), (k & _MASK).astype(np.intp)
        # count_nonzero / num_perm, not .mean(): the same k/64 values without a float64 pass over the booleans
        out[s:s + k.size] = np.count_nonzero(rows[later] == rows[earlier], axis=1) / rows.shape[1]
    return out


def _distinct(keys: np.ndarray, in_place: bool = False) -> np.ndarray:
    """Sorted distinct values. Sort + neighbour test: numpy 2's hash-table ``np.unique`` took 71 s on the 16M
    ``later << 32 | earlier`` keys of the benchmark's prompts (their low bits collide), a sort takes ~1 s.
    ``in_place`` sorts ``keys`` itself (no second copy of all candidates at split's memory peak)."""
    if in_place:
        keys.sort()
    else:
        keys = np.sort(keys)
    return keys[np.concatenate(([True], keys[1:] != keys[:-1]))] if keys.size else keys


_ROW_MIX = np.random.default_rng(20261202).integers(1, 2**63, size=4096, dtype=np.uint64) | np.uint64(1)


def _row_groups(mat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(order, group id per row in that order): rows ordered so that equal rows are adjacent, ties by index.

    By a 64-bit hash of each row (one stable argsort) instead of ``np.lexsort`` over all columns (a pass per
    column: 64 for whole signatures), then checked: where two neighbours with equal hashes differ (a hash
    collision), the exact lexsort is used. Group ids follow the hash order; callers need only that equal rows
    are adjacent and in index order.
    """
    if mat.shape[0] == 0:
        return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.int64)
    cols = mat.shape[1]
    if cols > _ROW_MIX.size:
        return _row_groups_lexsort(mat)
    h = np.zeros(mat.shape[0], dtype=np.uint64)
    for c in range(cols):  # column by column: numpy's integer matmul has no fast kernel (4x slower here)
        h += mat[:, c].astype(np.uint64) * _ROW_MIX[c]
    h ^= h >> np.uint64(29)  # the top bits of the products reach the bits a sort compares first
    order = np.argsort(h, kind="stable")
    sorted_rows, sorted_h = mat[order], h[order]
    same_h = sorted_h[1:] == sorted_h[:-1]
    differ = (sorted_rows[1:] != sorted_rows[:-1]).any(axis=1)
    if (same_h & differ).any():  # two different rows hashed alike: hash order no longer keeps groups adjacent
        return _row_groups_lexsort(mat)
    return order, np.concatenate(([0], np.cumsum(~same_h)))


def _row_groups_lexsort(mat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_row_groups` by ``np.lexsort`` over the columns (exact; the hash path's fallback)."""
    order = np.lexsort(mat.T[::-1])  # last key is primary: column 0 first; stable, so ties keep index order
    sorted_rows = mat[order]
    new = np.concatenate(([True], (sorted_rows[1:] != sorted_rows[:-1]).any(axis=1)))
    return order, np.cumsum(new) - 1


def _first_occurrence(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each row, the index of the first row equal to it; and whether it is that first row."""
    order, group = _row_groups(rows)
    starts = np.flatnonzero(np.concatenate(([True], group[1:] != group[:-1])))
    first_sorted = order[starts][group]  # the smallest index of each group (stable sort: it comes first)
    first_of = np.empty(len(rows), dtype=np.int64)
    first_of[order] = first_sorted
    return first_of, first_of == np.arange(len(rows))


def _bucket_pairs(band: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """All pairs of ``ids`` (ascending) whose band rows are equal, as ``later << 32 | earlier`` keys."""
    order, bucket = _row_groups(band)  # by bucket, then position, so by document within a bucket
    d_sorted = ids[order]
    start = np.concatenate(([True], bucket[1:] != bucket[:-1]))
    first_pos = np.maximum.accumulate(np.where(start, np.arange(bucket.size), 0))
    before = np.arange(bucket.size) - first_pos  # earlier members of the same bucket
    total = int(before.sum())
    if total == 0:
        return np.zeros(0, dtype=np.uint64)
    pos = np.repeat(np.arange(bucket.size), before)
    k = np.arange(total) - np.repeat(np.cumsum(before) - before, before)
    later = d_sorted[pos].astype(np.uint64)
    earlier = d_sorted[first_pos[pos] + k].astype(np.uint64)
    return (later << np.uint64(32)) | earlier


_BUCKETS = 128  # shingle-count buckets of the Jaccard bound: 64 let 486k of 756k pairs through, 128 42k, 256 2k
_BOUND_CHUNK = 1 << 15  # pairs per batch of the bound: 2 x 32k x 128 uint16 counts, 16 MB


def _jaccard_upper_bounds(sets: ShingleSets, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """An upper bound of each pair's Jaccard, never below the true value.

    Each document's shingles are counted into ``_BUCKETS`` buckets by hash; a shingle both sets hold falls in
    the same bucket of both, so the sum over buckets of the smaller count is at least the intersection, and
    ``|A| + |B| -`` that sum at most the union. Floating division rounds monotonically, so the bound computed
    in floats is still at least the Jaccard :func:`_exact_jaccards` computes.
    """
    counts = sets.bucket_counts(_BUCKETS)
    sizes = np.diff(sets.offsets)
    inter = np.empty(a.size, dtype=np.int64)
    for s in range(0, a.size, _BOUND_CHUNK):
        e = slice(s, s + _BOUND_CHUNK)
        inter[e] = np.minimum(counts[a[e]], counts[b[e]]).sum(axis=1)
    union = sizes[a] + sizes[b] - inter
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


def _exact_jaccards(sets: ShingleSets, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Jaccard of the shingle sets of documents ``a[k]`` and ``b[k]``, for all k, via sparse row products."""
    m = sets.matrix()
    sizes = np.diff(sets.offsets)
    out = np.empty(a.size, dtype=np.float64)
    step = max(1, (1 << 24) // max(1, int(sizes.mean())))  # ~16M stored entries per side per batch
    for s in range(0, a.size, step):
        e = slice(s, s + step)
        inter = np.asarray(m[a[e]].multiply(m[b[e]]).sum(axis=1)).ravel()
        union = sizes[a[e]] + sizes[b[e]] - inter
        out[e] = np.where(union > 0, inter / np.maximum(union, 1), 1.0)
    return out


def clusters_from_pairs(n: int, pairs: Sequence[tuple[int, int, float]]) -> UnionFind:
    uf = UnionFind(n)
    for i, j, _ in pairs:
        uf.union(i, j)
    return uf


def exact_key(text: str) -> bytes:
    """Key of exact duplicates: equal for texts whose :func:`normalised` forms are equal."""
    return _blake(normalised(text).encode())


def _blake(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


