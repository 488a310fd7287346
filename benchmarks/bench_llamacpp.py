"""llama.cpp server settings, measured from the server's own timings on the real grounded prompts.

How the llama.cpp engine's defaults were picked (serve/llamacpp_engine.py cites the figures): each
configuration — a GGUF type and server flags — runs as its own server process, all started up front; then for
each repeat, each configuration in turn answers the same grounded questions (the answer path's real prompts over
the shipped KB), one client after another and then ``--burst`` clients at once. Per configuration: prompt and
generation tokens/s from llama.cpp's ``timings`` (pure engine time), one-client end-to-end tokens/s and burst
throughput (wall clock), medians over the interleaved repeats. ``--quality`` adds, per GGUF type, the mean NLL
per assistant token of the shared real sample's first answers and how often its greedy next token equals the
shipped Q4_1 model's (transformers dequantises each GGUF), because a faster type must not be a worse model.

    python benchmarks/bench_llamacpp.py --configs "q41=Q4_1|--threads 1;q80=Q8_0|--threads 1 --threads-batch 2" \
        --repeats 3 --per-repeat 2 --burst 16
    python benchmarks/bench_llamacpp.py --configs "q41=Q4_1;q80=Q8_0;q40=Q4_0" --quality-only
    python benchmarks/bench_llamacpp.py --configs "prebuilt=Q8_0;native=Q8_0@/path/to/llama-server" --burst 16

``TYPE@PATH`` runs that configuration on a llama-server binary built for this CPU (what ``SAGPT_LLAMA_SERVER``
selects in the engine) instead of xllamacpp's prebuilt one, so both are measured in the same interleaved run.

Types: Q4_1 is the embedded file; other types are requantised from it once (publish.gguf.requantize) into
``--out``. Writes ``results.json`` there.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path


def gguf_for(qtype: str, out: Path) -> Path:
    from studyabroadgpt.models import default_gguf_path
    from studyabroadgpt.publish.gguf import requantize

    src = default_gguf_path()
    if qtype.upper() == "Q4_1":
        return src
    path = out / f"{src.stem}-{qtype.upper()}.gguf"
    if not path.exists():
        requantize(src, path, qtype)
    return path


def grounded_prompts(n: int, seed: int) -> list[list[dict]]:
    """The model messages the answer path builds (retrieval over the shipped KB) for ``n`` real-style questions."""
    import random

    from studyabroadgpt.eval.prompts import load_real_style
    from studyabroadgpt.serve.answer import Answerer

    answerer = Answerer.from_kb(mode="generate")
    qs = [r["prompt"] for r in load_real_style() if not r.get("messages")]
    random.Random(seed).shuffle(qs)
    return [answerer.prepare([{"role": "user", "content": q}]).model_messages for q in qs[:n]]


def quality(paths: dict[str, Path], n_convs: int = 24, max_len: int = 512) -> dict[str, dict]:
    """Mean NLL per assistant token on the shared sample's first answers, and greedy agreement with Q4_1."""
    import tempfile

    import torch
    from transformers import AutoModelForCausalLM

    from studyabroadgpt.data.load import load_valid
    from studyabroadgpt.models import default_gguf_path, load_tokenizer

    sample = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "studyabroadgpt-sample"
    convs = load_valid(str(sample / "conversations.jsonl")).conversations[:n_convs]
    tok = load_tokenizer("default")
    items = []
    for c in convs:
        turns = [{"role": t.role, "content": t.text} for t in c.turns][:2]
        prompt = tok.apply_chat_template(turns[:1], add_generation_prompt=True, tokenize=False)
        full = tok.apply_chat_template(turns, tokenize=False)
        p = tok(prompt, add_special_tokens=False)["input_ids"]
        ids = tok(full, add_special_tokens=False)["input_ids"][:max_len]
        items.append((torch.tensor([ids]), len(p)))
    ordered = {"Q4_1": default_gguf_path(), **{k: v for k, v in paths.items() if k != "Q4_1"}}
    ref, out = None, {}
    for name, path in ordered.items():
        with tempfile.TemporaryDirectory() as d:
            (Path(d) / "m.gguf").symlink_to(path)
            model = AutoModelForCausalLM.from_pretrained(d, gguf_file="m.gguf", dtype=torch.float32).eval()
        nll, n, preds = 0.0, 0, []
        with torch.no_grad():
            for ids, plen in items:
                logits = model(ids).logits[0, plen - 1:-1]
                nll += torch.nn.functional.cross_entropy(logits, ids[0, plen:], reduction="sum").item()
                n += ids.shape[1] - plen
                preds.append(logits.argmax(-1))
        ref = ref if ref is not None else preds
        agree = sum(int((a == b).sum()) for a, b in zip(preds, ref)) / n
        out[name] = {"nll_per_token": round(nll / n, 4), "tokens": n, "greedy_equal_q4_1": round(agree, 3)}
        print(f"{name}: NLL/token {nll / n:.4f} over {n} tokens, greedy next token = Q4_1's {agree:.3f}", flush=True)
        del model
    return out


def start_server(path: Path, flags: list[str], parallel: int, log: Path, binary: str | None = None):
    """One configuration's server, started exactly as the engine starts it (``llamacpp_process``) plus its flags;
    ``binary``: a native llama-server instead of xllamacpp's (the engine's ``SAGPT_LLAMA_SERVER``, set only while
    the command line is built, so the other configurations keep the prebuilt one)."""
    from studyabroadgpt.serve.llamacpp_engine import NATIVE_SERVER_ENV, GGUFModel, llamacpp_process

    saved = os.environ.pop(NATIVE_SERVER_ENV, None)
    if binary:
        os.environ[NATIVE_SERVER_ENV] = binary
    try:
        proc = llamacpp_process(GGUFModel(path), parallel=parallel, ctx_per_slot=2048, extra=flags, log_path=log)
    finally:
        os.environ.pop(NATIVE_SERVER_ENV, None)
        if saved is not None:
            os.environ[NATIVE_SERVER_ENV] = saved
    proc.start()
    return proc


def body(messages: list[dict], max_tokens: int) -> dict:
    from studyabroadgpt.serve.generation import GenParams

    # What the engine sends (greedy, llama.cpp's repeat penalty) plus llama.cpp's per-slot prompt cache.
    return {"messages": messages, "max_tokens": max_tokens, "temperature": 0,
            "repeat_penalty": GenParams().repetition_penalty, "cache_prompt": True}


async def burst(url: str, prompts: list[list[dict]], max_tokens: int) -> tuple[float, int]:
    import httpx

    async with httpx.AsyncClient(timeout=900) as c:
        t0 = time.perf_counter()
        rs = await asyncio.gather(*(c.post(f"{url}/v1/chat/completions", json=body(m, max_tokens)) for m in prompts))
        wall = time.perf_counter() - t0
    return wall, sum(r.json()["usage"]["completion_tokens"] for r in rs)


def main(argv: list[str] | None = None) -> int:
    import httpx

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", required=True, help="';'-separated NAME=TYPE[@LLAMA_SERVER]|server flags (TYPE: Q4_1, Q8_0, Q4_0…)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--per-repeat", type=int, default=2, help="one-client questions per configuration per repeat")
    p.add_argument("--burst", type=int, default=0, help="clients at once per repeat (0: none)")
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quality", action="store_true", help="also measure each type's NLL (transformers)")
    p.add_argument("--quality-only", action="store_true")
    p.add_argument("--out", default="runs/bench-llamacpp")
    args = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    configs, binaries = [], {}
    for item in filter(None, (c.strip() for c in args.configs.split(";"))):
        name, _, spec = item.partition("=")
        qtype, _, flags = spec.partition("|")
        qtype, _, binary = qtype.partition("@")
        configs.append((name, qtype.strip().upper(), flags.split()))
        binaries[name] = binary.strip() or None
    paths = {q: gguf_for(q, out) for _, q, _ in configs}
    uptime = lambda: subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()  # noqa: E731
    meta = {"uptime_before": uptime(), "configs": {n: {"type": q, "flags": f, "server": binaries[n] or "xllamacpp"}
                                                        for n, q, f in configs},
            "repeats": args.repeats, "per_repeat": args.per_repeat, "burst": args.burst, "max_tokens": args.max_tokens}
    print(meta["uptime_before"], flush=True)
    results: dict = {"meta": meta}
    if args.quality or args.quality_only:
        results["quality"] = quality(paths)
    if not args.quality_only:
        prompts = grounded_prompts(1 + args.repeats * (args.per_repeat + args.burst), args.seed)
        servers: dict = {}
        stats = {n: {"prompt_n": 0, "prompt_ms": 0.0, "gen_n": 0, "gen_ms": 0.0, "one": [], "burst": []}
                 for n, _, _ in configs}
        try:
            for n, q, f in configs:
                servers[n] = start_server(paths[q], f, max(1, args.burst), out / f"server-{n}.log", binaries[n])
            for name, proc in servers.items():
                url = proc.base_url
                # The same warm-up everywhere: allocates buffers, fills the slot's cache with the system prefix.
                httpx.post(f"{url}/v1/chat/completions", json=body(prompts[0], 8), timeout=600)
            at = 1
            for rep in range(args.repeats):
                one = prompts[at:at + args.per_repeat]
                at += args.per_repeat
                many = prompts[at:at + args.burst]
                at += args.burst
                for name, proc in servers.items():
                    url = proc.base_url
                    s, toks, t0 = stats[name], 0, time.perf_counter()
                    for m in one:
                        t = httpx.post(f"{url}/v1/chat/completions", json=body(m, args.max_tokens), timeout=600).json()
                        t = t["timings"]
                        s["prompt_n"] += t["prompt_n"]
                        s["prompt_ms"] += t["prompt_ms"]
                        s["gen_n"] += t["predicted_n"]
                        s["gen_ms"] += t["predicted_ms"]
                        toks += t["predicted_n"]
                    s["one"].append(round(toks / (time.perf_counter() - t0), 1))
                    line = f"repeat {rep + 1} {name}: 1 client {s['one'][-1]} tok/s"
                    if many:
                        wall, n = asyncio.run(burst(url, many, args.max_tokens))
                        s["burst"].append(round(n / wall, 1))
                        line += f", {len(many)} at once {s['burst'][-1]} tok/s"
                    print(line, f"(load {os.getloadavg()[0]:.2f})", flush=True)
        finally:
            for proc in servers.values():
                proc.stop()
        results["rows"] = {}
        for name, s in stats.items():
            row = {"prompt_tokens_per_s": round(s["prompt_n"] / s["prompt_ms"] * 1000, 1) if s["prompt_ms"] else None,
                   "gen_tokens_per_s": round(s["gen_n"] / s["gen_ms"] * 1000, 1) if s["gen_ms"] else None,
                   "prompt_tokens": s["prompt_n"], "one_client_tokens_per_s": statistics.median(s["one"]),
                   "one_client_runs": s["one"],
                   "burst_tokens_per_s": statistics.median(s["burst"]) if s["burst"] else None,
                   "burst_runs": s["burst"]}
            results["rows"][name] = row
            print(f"{name:>12}: prompt {row['prompt_tokens_per_s']} tok/s ({row['prompt_tokens']} tokens), generation "
                  f"{row['gen_tokens_per_s']} tok/s, 1 client {row['one_client_tokens_per_s']} {s['one']}"
                  + (f", {args.burst} at once {row['burst_tokens_per_s']} {s['burst']}" if s["burst"] else ""))
    meta["uptime_after"] = uptime()
    print(meta["uptime_after"])
    from studyabroadgpt.utils import atomic_write_json

    atomic_write_json(out / "results.json", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
