"""`sagpt merge`, `sagpt export gguf`, `sagpt publish`: share an adapter as a merged model, GGUF/Ollama, Hub repo.

Heavy imports (torch, transformers, peft, huggingface_hub) happen inside the commands so `sagpt --help` stays fast.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from . import PublishError

console = Console(stderr=True)
export_app = typer.Typer(help="Export a merged model to other runtimes (GGUF for llama.cpp / Ollama).",
                         no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command("merge", help="Merge a LoRA adapter into its 16/32-bit base and check the logits agree.")(merge)
    app.add_typer(export_app, name="export")
    export_app.command("gguf", help="Convert a merged model to GGUF (f16, q8_0...) and write an Ollama Modelfile.")(
        gguf)
    app.command("publish", help="Build a Hub-ready folder (model card, versions, eval) and optionally push it.")(
        publish)


def _fail(exc: PublishError) -> None:
    console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def _threads() -> None:
    import torch

    torch.set_num_threads(min(torch.get_num_threads(), 2) if torch.get_num_threads() > 0 else 2)


def merge(
    adapter: Path = typer.Option(..., "--adapter", help="PEFT adapter directory, e.g. runs/x/adapter."),
    out: Path = typer.Option(..., "--out", help="Where to write the merged checkpoint (safetensors + tokenizer)."),
    dtype: str = typer.Option("float16", "--dtype", help="float16, bfloat16 or float32 (never 4-bit)."),
    base: Optional[str] = typer.Option(None, "--base", help="Override the adapter's base model source."),
    tolerance: Optional[float] = typer.Option(None, "--tolerance", help="Max |Δlogit| allowed (default per dtype)."),
    device: str = typer.Option("auto", "--device", help="auto (GPU if present), cpu, cuda, cuda:1 ..."),
) -> None:
    from .merge import merge_adapter

    _threads()
    try:
        with console.status(f"merging {adapter} into its base ({dtype}) and comparing logits"):
            report = merge_adapter(adapter, out, dtype=dtype, base=base, tolerance=tolerance, device=device)
    except PublishError as exc:
        _fail(exc)
    console.print(f"merged [bold]{report.base_model}[/] + {adapter} → {out} ({dtype}); "
                  f"max |Δlogit| {report.max_abs_diff:.3g} ≤ {report.tolerance:.3g} over {report.n_prompts} prompts "
                  f"(top-1 agreement {report.top1_agreement:.1%}, adapter effect {report.adapter_effect:.3g}); "
                  f"{report.wall_time_s:.0f} s", highlight=False)


def gguf(
    merged: Path = typer.Option(..., "--merged", help="Merged checkpoint directory (from `sagpt merge`)."),
    out: Path = typer.Option(..., "--out", help="Output folder for the .gguf files and the Modelfile."),
    types: str = typer.Option("f16,q8_0", "--types", help="Comma-separated: f32, f16, bf16, q8_0."),
    system: Optional[str] = typer.Option(None, "--system", help="Default system prompt for the Modelfile "
                                         "(default: the run's system_prompt, else the model's own)."),
    check: bool = typer.Option(True, "--check/--no-check", help="Reload each GGUF and generate greedily."),
    max_new_tokens: int = typer.Option(128, "--max-new-tokens", min=1, help="Length of the check answer."),
) -> None:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from .gguf import export_gguf

    _threads()
    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=console,
                      transient=True) as progress:
            report = export_gguf(merged, out, types, system=system, verify=check, max_new_tokens=max_new_tokens,
                                 progress=progress)
    except PublishError as exc:
        _fail(exc)
    from rich.table import Table

    table = Table(title=f"GGUF export of {merged}")
    for col in ("type", "file", "size", "stops", "greedy = HF", "answer"):
        table.add_column(col)
    from .hub import human_size

    for outtype, entry in report.files.items():
        c = entry.get("check") or {}
        table.add_row(outtype, entry["file"], human_size(entry["bytes"]), str(c.get("stopped", "-")),
                      f"{c.get('greedy_prefix_match', '-')}/{c.get('new_tokens', '-')}", (c.get("answer") or "")[:60])
    console.print(table)
    console.print(f"Modelfile: {report.modelfile} (FROM {report.modelfile_gguf}); "
                  f"run: cd {out} && ollama create studyabroadgpt -f Modelfile", highlight=False)


def publish(
    run: Path = typer.Option(..., "--run", help="Training run folder (runs/<name>/ with adapter/)."),
    out: Path = typer.Option(..., "--out", help="The Hub-ready folder to write."),
    eval_dir: Optional[Path] = typer.Option(None, "--eval", help="Eval folder with summary.json."),
    audit: Optional[Path] = typer.Option(None, "--audit", help="Audit report (JSON) from `sagpt audit`."),
    dataset: Optional[Path] = typer.Option(None, "--dataset", help="Dataset folder with its card (`sagpt data card`)."),
    dataset_out: Optional[Path] = typer.Option(None, "--dataset-out", help="Where the dataset folder goes "
                                               "(default: <out>-dataset)."),
    dataset_id: Optional[str] = typer.Option(None, "--dataset-id", help="Hub id of the dataset (card metadata; "
                                             "pushed there with --push)."),
    merged: bool = typer.Option(False, "--merged", help="Publish the merged model instead of the adapter."),
    merge_dtype: str = typer.Option("float16", "--merge-dtype", help="dtype of the merged weights."),
    gguf_dir: Optional[Path] = typer.Option(None, "--gguf", help="Include GGUF files + Modelfile from this folder."),
    system: Optional[str] = typer.Option(None, "--system", help="Which eval system the weights are "
                                         "(default: the fine-tune without retrieval grounding)."),
    license: str = typer.Option("apache-2.0", "--license", help="License id (match the base model's)."),
    base_model: Optional[str] = typer.Option(None, "--base-model", help="Hub id of the base for the card, when "
                                             "the adapter names a local path."),
    push: bool = typer.Option(False, "--push", help="Upload to the Hub (otherwise a dry run)."),
    repo_id: Optional[str] = typer.Option(None, "--repo-id", help="user/name on the Hub."),
    private: bool = typer.Option(False, "--private", help="Create the repo as private."),
) -> None:
    from rich.table import Table

    from .bundle import publish_folder
    from .hub import check_repo_id, human_size, push as push_folder, upload_plan

    _threads()
    try:
        if push and not repo_id:
            raise PublishError("--push needs --repo-id user/name")
        if repo_id:
            check_repo_id(repo_id)
        if dataset_id:
            check_repo_id(dataset_id)
        with console.status(f"building {out}"):
            result = publish_folder(run, out, eval_dir=eval_dir, audit=audit, dataset_dir=dataset,
                                    dataset_out=dataset_out, merged=merged, merge_dtype=merge_dtype, gguf_dir=gguf_dir,
                                    repo_id=repo_id, dataset_id=dataset_id, license=license, system=system,
                                    base_model=base_model)
        for w in result.warnings:
            console.print(f"[yellow]warning:[/] {w}", highlight=False)
        folders = [(result.out, repo_id, "model")]
        if result.dataset_out is not None:
            folders.append((result.dataset_out, dataset_id, "dataset"))
        for folder, target, kind in folders:
            plan = upload_plan(folder)
            verb = "uploading" if push and target else "would upload"
            table = Table(title=f"{verb} {folder} → {kind} repo {target or '(no repo id)'}")
            for col in ("file", "size", "storage"):
                table.add_column(col)
            for f in plan:
                table.add_row(f.path, human_size(f.bytes), f.storage)
            table.add_row(f"[bold]{len(plan)} files[/]", f"[bold]{human_size(sum(f.bytes for f in plan))}[/]", "")
            console.print(table)
            if push and target:
                with console.status(f"pushing {folder} to {target}"):
                    info = push_folder(folder, target, repo_type=kind, private=private)
                console.print(f"pushed {info['files']} files: {info['commit_url']}", highlight=False)
            elif push:
                console.print(f"[yellow]not pushed[/]: {folder} (pass --dataset-id to push the dataset)")
        if not push:
            console.print("dry run: nothing uploaded. Add --push --repo-id user/name to upload.")
    except PublishError as exc:
        _fail(exc)
