"""Server limits and switches, one place (the CLI fills it from flags), and the decoding defaults."""
from __future__ import annotations

from dataclasses import dataclass, field

# Decoding defaults against degenerate repetition. Measured with benchmarks/bench_decoding.py on 12 real-style
# prompts, SmolLM2-135M-Instruct, max_tokens 160, configurations interleaved per batch (load 13-22 on 2 shared
# cores): looping answers greedy 5/12, repetition_penalty 1.15 + no_repeat_ngram_size 4 0/12, 1.3 + 3 0/12.
# The milder setting is kept: it ends the loops as well and bends the model's wording less. The answer path's
# loop cutter and early stop (serve/answer.py) do not depend on these values.
DECODING = {"repetition_penalty": 1.15, "no_repeat_ngram_size": 4, "penalty_scope": "all"}


@dataclass
class ServeSettings:
    max_body_bytes: int = 256 * 1024     # a long conversation is a few KB; anything bigger is a mistake or abuse
    max_tokens_cap: int = 1024           # requests asking for more get a 400, not a silent truncation
    default_max_tokens: int = 384
    max_concurrency: int = 4             # requests generating at once (the HF engine batches these together)
    max_queue: int = 16                  # requests waiting for a slot; beyond that: 429
    queue_timeout_s: float = 30.0        # waiting longer than this for a slot: 503
    request_timeout_s: float = 120.0     # generation deadline per request: 504 (or an error event when streaming)
    api_key: str | None = None
    cors_origins: list[str] = field(default_factory=list)
    rag: bool = True                     # retrieval grounding with citations
    gate: bool = True                    # factuality gate (only meaningful with rag)
    answer_mode: str = "auto"            # generate | compose | auto (serve/answer.py)
    repetition_penalty: float = DECODING["repetition_penalty"]
    no_repeat_ngram_size: int = DECODING["no_repeat_ngram_size"]
    # Conversation log for adviser review (opt-in): a SQLAlchemy URL (sqlite:///file.db, postgresql://...).
    log_db: str | None = None
    log_retention_days: int | None = None  # turns older than this are deleted at start-up and every 6 hours
    adviser_key: str | None = None       # the /review page's key; separate from api_key (students hold that)
    adapter_id: str | None = None        # recorded with each logged turn
