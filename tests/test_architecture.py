"""The package's import graph has no cycles: every module can be read knowing only the modules below it; and
CONTRIBUTING.md's package map names exactly the modules that exist.

All imports count, also the ones inside functions (a lazy import is still a dependency: it only hides the
cycle until the function runs). ``TYPE_CHECKING`` blocks are skipped: they never run.
"""
from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "studyabroadgpt"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(current: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = current.split(".") if is_package else current.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _type_checking_lines(tree: ast.AST) -> set[int]:
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                skip.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return skip


def import_graph() -> nx.DiGraph:
    files = sorted((SRC / PACKAGE).rglob("*.py"))
    modules = {_module_name(f): f for f in files if "migrations" not in f.parts}
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = _type_checking_lines(tree)
        is_package = path.name == "__init__.py"
        for node in ast.walk(tree):
            if getattr(node, "lineno", None) in skip:
                continue
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(name, is_package, node)
                # `from pkg import mod` imports a module; `from mod import name` imports from one.
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            for t in targets:
                while t and t not in modules:  # `a.b.c` where c is an attribute: the module is a.b
                    t = t.rpartition(".")[0]
                if t and t != name and t.startswith(PACKAGE) and t != PACKAGE:
                    graph.add_edge(name, t)
    return graph


def test_no_import_cycles():
    cycles = [sorted(c) for c in nx.strongly_connected_components(import_graph()) if len(c) > 1]
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_the_graph_sees_real_edges():
    g = import_graph()
    assert g.has_edge("studyabroadgpt.serve.answer", "studyabroadgpt.serve.gate")
    assert g.number_of_edges() > 100


def test_every_package_import_resolves():
    """A lazy `from ..x import y` whose module moved fails only when its function first runs (the review
    stats page broke that way after a refactor): resolve every in-package import without running it."""
    import importlib

    missing: list[str] = []
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        if "migrations" in path.parts:
            continue
        name = _module_name(path)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom):
                continue
            base = _resolve(name, path.name == "__init__.py", node)
            if not base.startswith(PACKAGE):
                continue
            try:
                module = importlib.import_module(base)
            except ModuleNotFoundError as e:
                missing.append(f"{path.relative_to(SRC)}:{node.lineno}: no module {base} ({e})")
                continue
            for alias in node.names:
                if alias.name != "*" and not hasattr(module, alias.name):
                    try:
                        importlib.import_module(f"{base}.{alias.name}")
                    except ModuleNotFoundError:
                        missing.append(f"{path.relative_to(SRC)}:{node.lineno}: {base} has no {alias.name}")
    assert not missing, "\n".join(missing)


def _map_rows() -> dict[str, set[str]]:
    """CONTRIBUTING.md's package map: {section ('' for the top-level modules, else 'data/' …): names in its rows}."""
    import re

    text = (SRC.parent / "CONTRIBUTING.md").read_text(encoding="utf-8")
    body = text.split("## The package map", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, set[str]] = {}
    section = None
    for line in body.splitlines():
        heading = re.match(r"\*\*(?:`([a-z_]+/)`|Top level)", line)
        if heading:
            section = heading.group(1) or ""
            rows[section] = set()
        elif section is not None and (cell := re.match(r"\| `([a-z_]+(?:\.py|/))` \|", line)):
            rows[section].add(cell.group(1))
    return rows


def test_contributing_map_names_every_module_and_no_other():
    """The package map in CONTRIBUTING.md is read by newcomers: a module added without a row, or a row left
    behind by a module that moved, fails here (add or fix the row: `| \\`name.py\\` | its one concern |`)."""
    on_disk: dict[str, set[str]] = {}
    for path in (SRC / PACKAGE).rglob("*.py"):
        rel = path.relative_to(SRC / PACKAGE)
        if "migrations" in rel.parts or (path.name == "__init__.py" and len(rel.parts) < 3):
            continue  # package markers; an __init__ deeper down is a sub-package of its own (eval/prompts/)
        if len(rel.parts) == 1:
            on_disk.setdefault("", set()).add(rel.name)
        elif len(rel.parts) == 2:
            on_disk.setdefault(rel.parts[0] + "/", set()).add(rel.name)
        else:
            on_disk.setdefault(rel.parts[0] + "/", set()).add(rel.parts[1] + "/")
    documented = _map_rows()
    problems = [f"{section or 'top level'}: {name} has no row in CONTRIBUTING.md's package map"
                for section, names in on_disk.items() for name in sorted(names - documented.get(section, set()))]
    problems += [f"{section or 'top level'}: the map has a row for {name}, which does not exist"
                 for section, names in documented.items() for name in sorted(names - on_disk.get(section, set()))]
    assert not problems, "\n".join(problems)
    assert set(documented) == set(on_disk)  # a section per sub-package, no section left for a removed one
