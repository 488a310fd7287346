"""Server limits and switches, one place (the CLI fills it from flags), and the decoding defaults."""
from __future__ import annotations

from dataclasses import dataclass, field

# Decoding defaults against degenerate repetition, measured with benchmarks/bench_decoding.py (10 real-style
# prompts, SmolLM2-135M-Instruct, max_tokens 160, configurations interleaved, load 11-12 on 2 shared cores;
# looping / degenerate / clean and on topic / question-answer embedding similarity, median):
#   greedy                                     5/10  0/10   5/10  0.776
#   rp 1.15 + 4-gram ban over prompt + answer  0/10  1/10   9/10  0.697   (the previous default)
#   rp 1.15 + 4-gram ban over the answer only  0/10  0/10  10/10  0.794   (this default)
#   rp 1.1 over the answer only                0/10  0/10  10/10  0.744
# Over the whole sequence the penalty and the ban also hit the prompt: the model could not write a 4-gram of
# its own grounding facts ("£1,136 per month elsewhere", which greedy quoted right) and wandered into
# "FASB-D-A-C-E-I-M-L-Y…" letter chains and 20-country lists. On the answer only, the loops stay stopped and
# the answers stay on the question. The answer path's loop cutter, early stop and degenerate-text check
# (serve/answer.py, serve/checks.py) do not depend on these values.
DECODING = {"repetition_penalty": 1.15, "no_repeat_ngram_size": 4, "penalty_scope": "generated"}


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
