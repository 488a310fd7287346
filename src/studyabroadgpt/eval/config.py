"""The ``eval run`` recipe (YAML → pydantic); unknown keys are errors so a typo never silently does nothing."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PromptsConfig(_Strict):
    # null: the hand-written real-style prompt set shipped in eval/prompts/real_style.jsonl
    path: str | None = None
    mode: Literal["first", "every"] = "first"  # first user turn, or every user turn with its history
    split: str | None = None                   # for Hub datasets
    limit: int | None = Field(default=None, ge=1)   # a category-stratified subset of this size (seeded)
    heldout: str | None = None                 # a held-out split of real data, asked as well (has references)
    heldout_limit: int | None = Field(default=None, ge=1)
    seed: int = 0


class ModelConfig(_Strict):
    base: str = "default"                      # models.load source
    adapter: str | None = None                 # PEFT dir, e.g. runs/<name>/adapter
    dtype: str = "float32"
    quantization: Literal["nf4"] | None = None
    base_name: str = "base"
    tuned_name: str = "tuned"


class EndpointConfig(_Strict):
    name: str
    base_url: str
    model: str = "default"
    api_key_env: str | None = None             # name of the env var holding the key (never the key itself)
    answer_mode: Literal["generate", "compose", "auto"] | None = None  # our server's answer mode per request


class GenerationConfig(_Strict):
    max_new_tokens: int = Field(default=256, ge=1)
    batch_size: int = Field(default=4, ge=1)
    system_prompt: str | None = None           # prepended when an item has no system message


class GroundingConfig(_Strict):
    """Also evaluate these model systems behind the server's answer path (retrieval, numbered-facts prompt,
    gate, citations): each appears as "<name>+rag"."""
    systems: list[str] = Field(default_factory=list)   # e.g. [base, tuned]
    kb: str | None = None                              # default: the shipped knowledge base
    top_k: int = Field(default=4, ge=1)
    mode: Literal["generate", "compose", "auto"] | None = None  # the answer mode; null: the server's default


class ScoreConfig(_Strict):
    bertscore_model: str | None = None         # default: the offline all-MiniLM-L6-v2
    bertscore_layer: int | None = None
    n_resamples: int = Field(default=1000, ge=100)
    seed: int = 0
    audit: bool = True
    allow_empty: bool = False
    baseline: str | None = None                # default: the first system
    references_from_kb: bool | None = None     # null: detected (references of synthesized conversations)
    compare: list[tuple[str, str]] = Field(default_factory=list)  # extra (a, b) pairs besides baseline vs each


class JudgeConfig(_Strict):
    endpoint: str | None = None                # OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1
    model: str = "default"
    api_key_env: str | None = None
    hf_model: str | None = None                # or a local transformers model as judge
    both_orders: bool = True
    seed: int = 0
    max_tokens: int = Field(default=300, ge=16)
    a: str | None = None                       # default: the baseline
    b: str | None = None                       # default: the first other system

    @model_validator(mode="after")
    def _one_backend(self) -> "JudgeConfig":
        if bool(self.endpoint) == bool(self.hf_model):
            raise ValueError("set exactly one of judge.endpoint or judge.hf_model")
        return self


class ReportConfig(_Strict):
    run_dir: str | None = None                 # training run dir: loss curve from its metrics.jsonl


class EvalConfig(_Strict):
    output_dir: str
    prompts: PromptsConfig
    model: ModelConfig | None = None
    endpoints: list[EndpointConfig] = Field(default_factory=list)
    generation: GenerationConfig = Field(default_factory=GenerationConfig)
    grounding: GroundingConfig = Field(default_factory=GroundingConfig)
    score: ScoreConfig = Field(default_factory=ScoreConfig)
    judge: JudgeConfig | None = None
    report: ReportConfig = Field(default_factory=ReportConfig)

    @model_validator(mode="after")
    def _has_systems(self) -> "EvalConfig":
        if self.model is None and not self.endpoints:
            raise ValueError("configure at least one system: model (base + adapter) and/or endpoints")
        return self
