"""Package layout rules of issue 15: no import circles, one validated read, one sequence-length default."""
from __future__ import annotations

import ast
from pathlib import Path

import studyabroadgpt

PKG = Path(studyabroadgpt.__file__).parent


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def import_graph() -> dict[str, set[str]]:
    """module -> package modules it imports (top-level or inside functions: a lazy import is still an edge)."""
    modules = {_module_name(p): p for p in PKG.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for mod, path in modules.items():
        package = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - node.level + 1]
                    stem = ".".join(base + ([node.module] if node.module else []))
                else:
                    stem = node.module or ""
                targets = [f"{stem}.{a.name}" for a in node.names] + [stem]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            for t in targets:
                if t in modules and t != mod:
                    graph[mod].add(t)
                    break
    return graph


def cycles(graph: dict[str, set[str]], within: str = "") -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), restricted to a package prefix."""
    nodes = [n for n in graph if n.startswith(within)]
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if not w.startswith(within):
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for n in nodes:
        if n not in index:
            visit(n)
    return out


def test_graph_sees_real_edges():
    g = import_graph()
    assert "studyabroadgpt.data.io" in g["studyabroadgpt.data.load"]
    assert "studyabroadgpt.data.validate" in g["studyabroadgpt.data.load"]
    assert "studyabroadgpt.data.load" in g["studyabroadgpt.train.trainer"]


def test_no_import_circle_in_the_data_stage():
    assert cycles(import_graph(), "studyabroadgpt.data.") == []
    # io is plain read/write: it judges nothing, so it imports neither validate, clean nor load
    assert not {"studyabroadgpt.data.validate", "studyabroadgpt.data.clean", "studyabroadgpt.data.load"} & \
        import_graph()["studyabroadgpt.data.io"]


def test_validated_read_exists_once():
    """Only data/load.py pairs the reader with the record judge; every other module calls load_valid."""
    offenders = []
    for path in PKG.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        if path.name == "load.py" and path.parent.name == "data":
            continue
        if "iter_raw(" in text and ("validate_record(" in text or "clean_record(" in text):
            offenders.append(_module_name(path))
    # kb/report.py reads model *outputs*, where rows that are not conversations are answers in their own right
    assert sorted(offenders) in ([], ["studyabroadgpt.kb.report"])


def test_stats_seq_len_default_is_the_training_recipes():
    from studyabroadgpt.data.stats import DEFAULT_SEQ_LEN
    from studyabroadgpt.train.config import TrainConfig

    assert TrainConfig().seq_len == DEFAULT_SEQ_LEN


def test_max_chars_default_written_once():
    text = (PKG / "data" / "cli.py").read_text(encoding="utf-8")
    assert "100_000" not in text and "DEFAULT_MAX_CHARS" in text
