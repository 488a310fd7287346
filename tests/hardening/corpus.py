"""A generated corpus of bad inputs, run through the real CLI in-process (typer's CliRunner).

Each *family* is a generator ``fn(root: Path) -> Iterable[Case]`` registered with :func:`family`; it writes its
input files under ``root`` and says what the command must do with them. :func:`run_case` runs one case and
returns an :class:`Outcome` that classifies it the way issue 14 counts:

* ``traceback``: the command raised (in-process) or printed a Python traceback, or exited 3 (internal error);
* ``silent_loss``: it exited 0 yet records in != kept + quarantined;
* ``unclear``: a rejected source whose message does not name the file, or a quarantine reason without file,
  line, field and message;
* ``hang``: it ran past the per-case time limit.

To add cases (KB files, request bodies…), write a generator in your own test module and decorate it::

    from tests.hardening.corpus import Case, family

    @family("kb")
    def broken_kbs(root):
        yield Case("kb/empty-gb", ["kb", "validate", "--kb", str(d)], expect="usage", mentions=[str(d)])

A case whose check is not a CLI call can pass ``run=`` (a callable returning an Outcome-compatible dict:
``{"exit": int, "output": str, "exception": BaseException | None}``).

``python -m tests.hardening.corpus`` prints the figures (inputs, tracebacks, silent losses, unclear, hangs); with
``PYTHONPATH=/work/before/src`` it measures the starting commit the same way.
"""
from __future__ import annotations

import csv
import gzip
import io
import json
import signal
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

FAMILIES: dict[str, list[Callable[[Path], Iterable["Case"]]]] = {}


def family(name: str):
    def deco(fn):
        FAMILIES.setdefault(name, []).append(fn)
        return fn
    return deco


@dataclass
class Case:
    name: str
    args: list[str]
    # "ok": exit 0 (or 1 under --strict) with accounting; "usage": exit 2 naming the source; "either": a source
    # that may be read or rejected as a whole, both are fine as long as the rule of the outcome holds
    expect: str = "ok"
    records: int | None = None  # records the input holds (for records in = kept + quarantined)
    kept_file: Path | None = None  # where kept records are written (JSONL) for the count
    quarantine: Path | None = None
    mentions: list[str] = field(default_factory=list)  # text a rejection message must contain (the file)
    inputs: int = 1  # how many input files/dirs this case stands for
    run: Callable[[], dict] | None = None


@dataclass
class Outcome:
    case: Case
    exit: int | None
    kind: str  # ok | traceback | silent_loss | unclear | hang | wrong_exit
    detail: str = ""
    seconds: float = 0.0


class _Timeout(Exception):
    pass


def _count_jsonl(path: Path | None) -> int:
    if path is None or not path.exists():
        return 0
    return sum(1 for line in path.read_bytes().splitlines() if line.strip())


def _quarantine_problems(path: Path | None) -> list[str]:
    """Quarantine rows must each name file, line, field and a message, and keep the record."""
    bad = []
    if path is None or not path.exists():
        return bad
    for n, line in enumerate(path.read_bytes().splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        if "record" not in row or not row.get("reasons"):
            bad.append(f"row {n}: no record or no reasons")
            continue
        for r in row["reasons"]:
            if not (r.get("file") and isinstance(r.get("line"), int) and r["line"] >= 1 and r.get("field")
                    and r.get("message")):
                bad.append(f"row {n}: reason without file/line/field/message: {r}")
    return bad


def _expected_error_types() -> tuple[type, ...]:
    """What the starting commit's ``main()`` turned into exit 2 (in-process it reaches us as an exception)."""
    from studyabroadgpt import cli

    fn = getattr(cli, "_expected_errors", None)
    return fn() if fn else ()


def make_runner():
    """typer's CliRunner, building the click command from the app once instead of on every invoke (that rebuild
    is ~75% of a small command's time in-process; a real `sagpt` process builds it once too)."""
    import typer.main
    import typer.testing
    from studyabroadgpt.cli import app

    command = typer.main.get_command(app)

    class Runner(typer.testing.CliRunner):
        def invoke(self, app, *args, **kwargs):
            real = typer.testing._get_command
            typer.testing._get_command = lambda _app: command
            try:
                return super().invoke(app, *args, **kwargs)
            finally:
                typer.testing._get_command = real

    return Runner()


def run_case(case: Case, runner: Any, limit_s: float = 30.0) -> Outcome:
    from studyabroadgpt.cli import app

    def on_alarm(*_):
        raise _Timeout()

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, limit_s)
    t0 = time.perf_counter()
    try:
        if case.run is not None:
            res = case.run()
            code, output, exc = res["exit"], res["output"], res.get("exception")
        else:
            result = runner.invoke(app, case.args, catch_exceptions=True)
            code, output, exc = result.exit_code, result.output, result.exception
    except _Timeout:
        return Outcome(case, None, "hang", f"> {limit_s:.0f} s", time.perf_counter() - t0)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    dt = time.perf_counter() - t0
    if isinstance(exc, _Timeout):
        return Outcome(case, None, "hang", f"> {limit_s:.0f} s", dt)
    if exc is not None and not isinstance(exc, SystemExit):
        if isinstance(exc, _expected_error_types()):
            code, output = 2, output + f"\nerror: {exc}"  # what the old main() printed
        else:
            return Outcome(case, code, "traceback", f"{type(exc).__name__}: {str(exc)[:200]}", dt)
    if "Traceback (most recent call last)" in output or code == 3:
        return Outcome(case, code, "traceback", output.strip().splitlines()[-1][:200] if output.strip() else "", dt)
    if code == 2:
        if case.expect == "ok":
            return Outcome(case, code, "wrong_exit", f"exit 2, expected a read: {output.strip()[-300:]}", dt)
        missing = [m for m in case.mentions if m not in output.replace("\n", "")]
        if missing:
            return Outcome(case, code, "unclear", f"message does not name {missing}: {output.strip()[-300:]}", dt)
        return Outcome(case, code, "ok", "", dt)
    if code not in (0, 1):
        return Outcome(case, code, "wrong_exit", output.strip()[-300:], dt)
    if case.expect == "usage":
        return Outcome(case, code, "wrong_exit", f"exit {code}, expected 2: {output.strip()[-300:]}", dt)
    if case.records is not None and case.kept_file is not None:
        kept, quarantined = _count_jsonl(case.kept_file), _count_jsonl(case.quarantine)
        if kept + quarantined != case.records:
            return Outcome(case, code, "silent_loss", f"{case.records} in, {kept} kept + {quarantined} "
                           "quarantined", dt)
    problems = _quarantine_problems(case.quarantine)
    if problems:
        return Outcome(case, code, "unclear", "; ".join(problems[:3]), dt)
    return Outcome(case, code, "ok", "", dt)


def build_cases(root: Path, families: Iterable[str] | None = None) -> list[Case]:
    cases: list[Case] = []
    for name, fns in FAMILIES.items():
        if families is not None and name not in families:
            continue
        for fn in fns:
            cases.extend(fn(root / name / fn.__name__))
    return cases


def summarise(outcomes: list[Outcome]) -> dict[str, Any]:
    kinds = Counter(o.kind for o in outcomes)
    return {"cases": len(outcomes), "inputs": sum(o.case.inputs for o in outcomes), **{k: kinds.get(k, 0) for k in
            ("ok", "traceback", "silent_loss", "unclear", "hang", "wrong_exit")},
            "seconds": round(sum(o.seconds for o in outcomes), 1)}


# ============================================================================================ data inputs
#
# Records are built as JSON *text* so that a case can hold what no Python object can: truncated JSON, lone
# surrogate escapes, 100,000 nested brackets, a 5,000-digit integer, NaN.

Q, A = "How much money do I need to show for a UK Student visa?", "## Funds\n- £1,483 a month for up to 9 months in London [1]."


def _good(fmt: str, i: int) -> dict:
    if fmt == "sharegpt":
        return {"id": f"g{i}", "conversations": [{"from": "human", "value": f"{Q} ({i})"},
                                                  {"from": "gpt", "value": A}]}
    if fmt == "messages":
        return {"id": f"g{i}", "messages": [{"role": "user", "content": f"{Q} ({i})"},
                                             {"role": "assistant", "content": A}]}
    return {"instruction": f"{Q} ({i})", "input": "", "output": A}


def _dump(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)


def _turns(fmt: str, pairs: list[tuple[Any, Any]]) -> str:
    key, rk, tk = ("conversations", "from", "value") if fmt == "sharegpt" else ("messages", "role", "content")
    return _dump({"id": "bad", key: [{rk: r, tk: t} for r, t in pairs]})


# name -> fn(fmt) -> JSON text of one bad record (None: the kind does not apply to the format)
BAD: dict[str, Callable[[str], str | None]] = {
    "truncated": lambda f: '{"conversations": [{"from": "human", "value": "trunc',
    "lone_surrogate": lambda f: (_turns(f, [("user", "x"), ("assistant", "y")]).replace('"y"', '"hi \\ud800"')
                                 if f != "alpaca" else '{"instruction": "hi \\ud800", "output": "a"}'),
    "lone_low_surrogate": lambda f: _turns(f, [("user", "q \\udfff"), ("assistant", "a")]).replace("\\\\", "\\")
    if f != "alpaca" else '{"instruction": "q", "output": "a \\udc00"}',
    "deep_nesting": lambda f: "[" * 100_000 + "]" * 100_000,
    "deep_nesting_in_field": lambda f: '{"id": "deep", "metadata": ' + "[" * 50_000 + "]" * 50_000 + "}",
    "huge_integer": lambda f: '{"id": ' + "9" * 5000 + ', "conversations": []}',
    "huge_integer_in_text": lambda f: (_turns(f, [("user", "q"), ("assistant", "a")])[:-1] + ', "n": '
                                       + "1" * 5000 + "}") if f != "alpaca" else
    '{"instruction": "q", "output": "a", "n": ' + "7" * 5000 + "}",
    "huge_float": lambda f: '{"id": "f", "score": 1e400, "conversations": []}',
    "nan": lambda f: '{"id": "n", "score": NaN, "conversations": []}',
    "markup_role": lambda f: _turns(f, [("[/]", "q"), ("assistant", "a")]) if f != "alpaca" else None,
    "markup_role_bold": lambda f: _turns(f, [("user", "q"), ("[bold red]x[/]", "a")]) if f != "alpaca" else None,
    "markup_id": lambda f: _turns(f, [("user", "q"), ("user", "a")]).replace('"bad"', '"[/]"')
    if f != "alpaca" else '{"id": "[/]", "instruction": "q", "output": ["a"]}',
    "markup_text": lambda f: _turns(f, [("user", "[/]"), ("robot", "[link=x]")]) if f != "alpaca" else None,
    "array": lambda f: "[1, 2, 3]",
    "string": lambda f: '"just a string"',
    "number": lambda f: "42",
    "null": lambda f: "null",
    "boolean": lambda f: "true",
    "unknown_format": lambda f: '{"text": "no known format"}',
    "empty_object": lambda f: "{}",
    "turns_not_list": lambda f: ('{"conversations": "not a list"}' if f == "sharegpt"
                                 else '{"messages": {"role": "user"}}') if f != "alpaca" else None,
    "turns_number": lambda f: '{"conversations": 7}' if f != "alpaca" else None,
    "turns_null": lambda f: '{"messages": null}' if f != "alpaca" else None,
    "turn_not_object": lambda f: _dump({"conversations": ["hi", 3]}) if f != "alpaca" else None,
    "missing_role": lambda f: _dump({"messages": [{"content": "q"}]}) if f != "alpaca" else None,
    "role_number": lambda f: _turns(f, [(1, "q"), ("assistant", "a")]) if f != "alpaca" else None,
    "role_list": lambda f: _turns(f, [(["user"], "q"), ("assistant", "a")]) if f != "alpaca" else None,
    "role_null": lambda f: _turns(f, [(None, "q"), ("assistant", "a")]) if f != "alpaca" else None,
    "text_number": lambda f: _turns(f, [("user", 5), ("assistant", "a")]) if f != "alpaca" else None,
    "text_list": lambda f: _turns(f, [("user", ["q"]), ("assistant", "a")]) if f != "alpaca" else None,
    "text_object": lambda f: _turns(f, [("user", {"t": "q"}), ("assistant", "a")]) if f != "alpaca" else None,
    "text_null": lambda f: _turns(f, [("user", None), ("assistant", "a")]) if f != "alpaca" else None,
    "empty_text": lambda f: _turns(f, [("user", ""), ("assistant", "a")]) if f != "alpaca" else
    '{"instruction": "", "output": "a"}',
    "whitespace_text": lambda f: _turns(f, [("user", "q"), ("assistant", " \n\t ")]) if f != "alpaca" else
    '{"instruction": "q", "output": "   "}',
    "assistant_first": lambda f: _turns(f, [("assistant", "a"), ("user", "q")]) if f != "alpaca" else None,
    "two_assistants": lambda f: _turns(f, [("user", "q"), ("assistant", "a"), ("assistant", "b")])
    if f != "alpaca" else None,
    "last_user": lambda f: _turns(f, [("user", "q")]) if f != "alpaca" else None,
    "only_system": lambda f: _turns(f, [("system", "s")]) if f != "alpaca" else None,
    "system_late": lambda f: _turns(f, [("user", "q"), ("assistant", "a"), ("system", "s"), ("user", "q2"),
                                        ("assistant", "a2")]) if f != "alpaca" else None,
    "no_turns": lambda f: _turns(f, []) if f != "alpaca" else None,
    "too_long": lambda f: _turns(f, [("user", "q"), ("assistant", "x" * 100_001)]) if f != "alpaca" else
    _dump({"instruction": "q", "output": "x" * 100_001}),
    "alpaca_instruction_list": lambda f: _dump({"instruction": ["What is IELTS?"], "output": "A test."}),
    "alpaca_output_number": lambda f: _dump({"instruction": "q", "output": 42}),
    "alpaca_input_object": lambda f: _dump({"instruction": "q", "input": {"x": 1}, "output": "a"}),
    "alpaca_system_list": lambda f: _dump({"instruction": "q", "output": "a", "system": ["be brief"]}),
    "alpaca_output_null": lambda f: _dump({"instruction": "q", "output": None}),
    "id_object": lambda f: _dump({**_good(f, 0), "id": {"a": 1}}),
    "id_list": lambda f: _dump({**_good(f, 0), "id": [1]}),
    "id_bool": lambda f: _dump({**_good(f, 0), "id": True}),
    "null_char_role": lambda f: _turns(f, [("us\u0000er", "q"), ("assistant", "a")]) if f != "alpaca" else None,
    "control_chars_only": lambda f: _turns(f, [("user", "\u0001\u0002"), ("assistant", "a")])
    if f != "alpaca" else None,
    "zero_width_only": lambda f: _turns(f, [("user", "\u200b\u200b"), ("assistant", "a")])
    if f != "alpaca" else None,
    "duplicate_keys": lambda f: '{"conversations": 1, "conversations": [{"from": "human"}]}',
    "trailing_garbage": lambda f: _dump(_good(f, 0)) + " garbage",
    "two_objects_one_line": lambda f: _dump(_good(f, 0)) + _dump(_good(f, 1)),
    "single_quotes": lambda f: "{'conversations': []}",
    "comment": lambda f: "// a comment",
    "metadata_not_object": lambda f: _dump({**_good(f, 0), "metadata": "x"}),
    "provenance_weird": lambda f: _turns(f, [("user", "q"), ("assistant", "a")]).replace(
        '"a"}', '"a", "provenance": {"x": [1, 2]}}') if f != "alpaca" else None,
}

# kinds that make a whole-file JSON document unparsable (a JSONL line is quarantined; a .json file is rejected)
BREAKS_JSON = {"truncated", "lone_surrogate", "lone_low_surrogate", "deep_nesting", "deep_nesting_in_field",
               "huge_integer", "huge_integer_in_text", "huge_float", "nan", "trailing_garbage",
               "two_objects_one_line", "single_quotes", "comment"}


def _common_args(src: Path, out_dir: Path, cmd: str) -> tuple[list[str], Path, Path]:
    kept, q = out_dir / f"{cmd}.kept.jsonl", out_dir / f"{cmd}.quarantine.jsonl"
    if cmd == "validate":
        return ["data", "validate", str(src), "--out", str(kept), "--quarantine", str(q)], kept, q
    return ["data", "clean", str(src), "--out", str(kept), "--quarantine", str(q)], kept, q


def _jsonl_text(lines: list[str]) -> str:
    return "\n".join(lines) + "\n"


@family("data")
def bad_records(root: Path) -> Iterator[Case]:
    """Every bad-record kind × format × container, each between good records (good ones must be kept)."""
    containers = ["jsonl", "ndjson", "jsonlines", "jsonl.gz", "json", "json-splits"]
    n = 0
    for kind, make in BAD.items():
        for fmt in ("sharegpt", "messages", "alpaca"):
            bad = make(fmt)
            if bad is None:
                continue
            for container in containers:
                n += 1
                d = root / f"{n:04d}"
                d.mkdir(parents=True, exist_ok=True)
                lines = [_dump(_good(fmt, 1)), bad, _dump(_good(fmt, 2))]
                cmd = "clean" if n % 3 == 0 else "validate"  # both readers, a third of the time cleaning
                if container == "json-splits":  # {"train": [...], "test": [...]}: both splits are read
                    path = d / f"{kind}.json"
                    path.write_text('{"train": [' + lines[0] + ",\n" + lines[1] + '],\n"test": [' + lines[2]
                                    + "]}", encoding="utf-8")
                    breaks = kind in BREAKS_JSON
                    args, kept, q = _common_args(path, d, cmd)
                    yield Case(f"data/{kind}/{fmt}/{container}", args, expect="usage" if breaks else "ok",
                               records=None if breaks else 3, kept_file=kept, quarantine=q, mentions=[path.name])
                    continue
                if container == "json":
                    path = d / f"{kind}.json"
                    path.write_text("[" + ",\n".join(lines) + "]", encoding="utf-8")
                    breaks = kind in BREAKS_JSON
                    args, kept, q = _common_args(path, d, cmd)
                    # a list whose items are not all records is still read item by item (3 records)
                    yield Case(f"data/{kind}/{fmt}/{container}", args, expect="usage" if breaks else "ok",
                               records=None if breaks else 3, kept_file=kept, quarantine=q, mentions=[path.name])
                    continue
                suffix = container
                path = d / f"{kind}.{suffix}"
                data = _jsonl_text(lines).encode("utf-8")
                path.write_bytes(gzip.compress(data) if suffix.endswith(".gz") else data)
                args, kept, q = _common_args(path, d, cmd)
                yield Case(f"data/{kind}/{fmt}/{container}", args, records=3, kept_file=kept, quarantine=q)


def _rows_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    cols = sorted({k for r in rows for k in r})
    w = csv.DictWriter(buf, fieldnames=cols)
    w.writeheader()
    for r in rows:
        w.writerow({k: (v if isinstance(v, str) else json.dumps(v)) for k, v in r.items()})
    return buf.getvalue()


@family("data")
def csv_inputs(root: Path) -> Iterator[Case]:
    """CSV with JSON cells (ShareGPT/messages) and Alpaca columns, each bad kind in a cell."""
    n = 0
    for kind, make in BAD.items():
        for fmt in ("sharegpt", "messages"):
            bad = make(fmt)
            if bad is None:
                continue
            n += 1
            d = root / f"{n:04d}"
            d.mkdir(parents=True, exist_ok=True)
            key = "conversations" if fmt == "sharegpt" else "messages"
            good = [_good(fmt, 1), _good(fmt, 2)]
            rows = [{"id": g["id"], key: json.dumps(g[key])} for g in good]
            # the bad record's text goes into the turns cell as it is: a CSV cell holds text, any text
            rows.insert(1, {"id": "bad", key: bad})
            path = d / f"{kind}.csv"
            path.write_text(_rows_csv(rows), encoding="utf-8")
            args, kept, q = _common_args(path, d, "validate" if n % 2 else "clean")
            yield Case(f"csv/{kind}/{fmt}", args, records=3, kept_file=kept, quarantine=q)
    # Alpaca columns: every cell is text in CSV, so the bad kinds are empty/whitespace/huge/markup cells
    for i, (instr, output) in enumerate([("", "a"), ("q", ""), ("[/]", "[bold]"), ("q", "x" * 100_001),
                                         ("  ", "  "), ("q\u0000", "a\u200b"), ("[" * 100_000, "a"),
                                         ("q", "9" * 5000)]):
        d = root / f"alpaca{i}"
        d.mkdir(parents=True, exist_ok=True)
        path = d / "alpaca.csv"
        path.write_text(_rows_csv([{"instruction": "ok?", "input": "", "output": "yes"},
                                   {"instruction": instr, "input": "", "output": output}]), encoding="utf-8")
        args, kept, q = _common_args(path, d, "validate")
        yield Case(f"csv/alpaca{i}", args, records=2, kept_file=kept, quarantine=q)


@family("data")
def file_level(root: Path) -> Iterator[Case]:
    """Whole files: empty, blank, BOM, binary, wrong type, corrupt gzip/Parquet, JSON containers, missing."""
    root.mkdir(parents=True, exist_ok=True)
    good = _dump(_good("sharegpt", 1))
    specs: list[tuple[str, bytes, str, int | None]] = [  # name, bytes, expect, records
        ("empty.jsonl", b"", "ok", 0),
        ("blank.jsonl", b"\n\n  \n", "ok", 0),
        ("bom_blank_first.jsonl", b"\xef\xbb\xbf\n" + good.encode() + b"\n", "ok", 1),
        ("bom_only.jsonl", b"\xef\xbb\xbf", "ok", 0),
        ("bom_record.jsonl", b"\xef\xbb\xbf" + good.encode() + b"\n", "ok", 1),
        ("crlf.jsonl", (good + "\r\n" + good + "\r\n").encode(), "ok", 2),
        ("no_final_newline.jsonl", good.encode(), "ok", 1),
        ("binary.jsonl", bytes(range(256)) * 4, "ok", None),
        ("latin1.jsonl", "{\"id\": \"é\"}\n".encode("latin-1"), "ok", 1),
        ("utf16.jsonl", (good + "\n").encode("utf-16"), "ok", None),
        ("nul_bytes.jsonl", b"\x00" * 100 + b"\n" + good.encode() + b"\n", "ok", 2),
        ("huge_line.jsonl", (_turns("sharegpt", [("user", "q"), ("assistant", " " * 300_000)]) + "\n").encode(),
         "ok", 1),
        ("many_blank_lines.jsonl", b"\n" * 10_000 + good.encode() + b"\n", "ok", 1),
        ("not_gzip.jsonl.gz", b"this is not gzip\n", "usage", None),
        ("truncated.jsonl.gz", gzip.compress(((good + "\n") * 50).encode())[:-30], "either", None),
        ("empty.json", b"", "usage", None),
        ("scalar.json", b"42", "usage", None),
        ("string.json", b'"x"', "usage", None),
        ("null.json", b"null", "usage", None),
        ("deep.json", b"[" * 100_000 + b"]" * 100_000, "usage", None),
        ("huge_int.json", b"[" + b"1" * 5000 + b"]", "usage", None),
        ("surrogate.json", b'[{"instruction": "\\ud800", "output": "a"}]', "usage", None),
        ("bom.json", b"\xef\xbb\xbf[" + good.encode() + b"]", "ok", 1),
        ("latin1.json", '[{"id": "é"}]'.encode("latin-1"), "usage", None),
        ("single_record.json", good.encode(), "ok", 1),
        ("data_container.json", b'{"data": [' + good.encode() + b"]}", "ok", 1),
        ("splits.json", b'{"train": [' + good.encode() + b", " + good.encode() + b'], "test": [' + good.encode()
         + b"]}", "ok", 3),
        ("splits_with_bad.json", b'{"train": [' + good.encode() + b', {"x": 1}], "test": [' + good.encode()
         + b"]}", "ok", 3),
        ("empty_list.json", b"[]", "ok", 0),
        ("empty_object.json", b"{}", "ok", 1),
        ("list_of_lists.json", b"[[1], [2]]", "ok", 2),
        ("not_parquet.parquet", b"PAR1 not really", "usage", None),
        ("empty.parquet", b"", "usage", None),
        ("empty.csv", b"", "usage", None),
        ("header_only.csv", b"instruction,input,output\n", "ok", 0),
        ("bad_utf8.csv", "instruction,output\n\xe9t\xe9,a\n".encode("latin-1"), "usage", None),
        ("ragged.csv", b"instruction,output\nq,a,extra,more\n", "either", None),
        ("quote_unclosed.csv", b'instruction,output\n"q,a\n', "either", None),
        ("bom.csv", b"\xef\xbb\xbfinstruction,input,output\nq,,a\n", "ok", 1),
        ("notes.txt", b"hello", "usage", None),
        ("no_suffix", good.encode(), "usage", None),
        ("data.yaml", b"a: 1", "usage", None),
    ]
    for name, data, expect, records in specs:
        d = root / name.replace(".", "_")
        d.mkdir(parents=True, exist_ok=True)
        path = d / name
        path.write_bytes(data)
        for cmd in ("validate", "clean"):
            args, kept, q = _common_args(path, d, cmd)
            yield Case(f"file/{name}/{cmd}", args, expect=expect, records=records, kept_file=kept, quarantine=q,
                       mentions=[name], inputs=1 if cmd == "validate" else 0)
    missing = root / "does-not-exist.jsonl"
    yield Case("file/missing", ["data", "validate", str(missing)], expect="usage", mentions=[missing.name])
    yield Case("file/hub-like-missing", ["data", "validate", "./nope/x.jsonl"], expect="usage",
               mentions=["x.jsonl"])


@family("data")
def directories(root: Path) -> Iterator[Case]:
    """Directories: every readable suffix is read, everything else is reported as skipped; empty dirs fail."""
    good = _dump(_good("sharegpt", 1))
    layouts: dict[str, tuple[dict[str, bytes], str, int | None]] = {
        "mixed_suffixes": ({"a.jsonl": (good + "\n").encode(), "b.ndjson": (good + "\n").encode(),
                            "c.jsonlines": (good + "\n").encode(), "d.jsonl.gz": gzip.compress((good + "\n").encode()),
                            "e.txt": b"notes", "README.md": b"# hi"}, "ok", 4),
        "only_text": ({"a.txt": b"x", "b.md": b"y"}, "usage", None),
        "empty": ({}, "usage", None),
        "nested": ({"x/y/a.jsonl": (good + "\n").encode(), "x/b.json": ("[" + good + "]").encode()}, "ok", 2),
        "with_broken_json": ({"a.jsonl": (good + "\n").encode(), "b.json": b"[{"}, "usage", None),
        "hidden_files": ({".hidden.jsonl": (good + "\n").encode(), ".DS_Store": b"\x00\x01"}, "ok", 1),
        "bad_lines_across_files": ({"a.jsonl": (good + "\n{bad\n").encode(), "b.ndjson": b"[1]\n" + good.encode()},
                                   "ok", 4),
        "uppercase_suffix": ({"A.JSONL": (good + "\n").encode()}, "ok", 1),
        "csv_and_jsonl": ({"a.csv": b"instruction,input,output\nq,,a\n", "b.jsonl": (good + "\n").encode()},
                          "ok", 2),
        "gz_corrupt": ({"a.jsonl.gz": b"nope", "b.jsonl": (good + "\n").encode()}, "usage", None),
        "bom_files": ({"a.jsonl": b"\xef\xbb\xbf\n" + good.encode() + b"\n", "b.json": b"\xef\xbb\xbf[" +
                       good.encode() + b"]"}, "ok", 2),
        "many_small": ({f"part-{i:03d}.jsonl": (good + "\n").encode() for i in range(40)}, "ok", 40),
    }
    for i in range(8):  # directories holding one bad kind each, beside a good file
        kind = list(BAD)[i * 7 % len(BAD)]
        bad = BAD[kind]("sharegpt") or "{}"
        layouts[f"bad_kind_{kind}"] = ({"good.jsonl": (good + "\n").encode(), "bad.ndjson": (bad + "\n").encode(),
                                        "skip.txt": b"-"}, "ok", 2)
    for name, (files, expect, records) in layouts.items():
        d = root / name
        src = d / "src"
        src.mkdir(parents=True, exist_ok=True)
        for rel, data in files.items():
            p = src / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
        for cmd in ("validate", "clean"):
            args, kept, q = _common_args(src, d, cmd)
            yield Case(f"dir/{name}/{cmd}", args, expect=expect, records=records, kept_file=kept, quarantine=q,
                       mentions=["src"], inputs=1 if cmd == "validate" else 0)


@family("data")
def parquet_and_outputs(root: Path) -> Iterator[Case]:
    """Parquet with timestamp/bytes/decimal/nested columns, written back as Parquet and as a DatasetDict."""
    import datetime as dt
    import decimal

    import pyarrow as pa
    import pyarrow.parquet as pq

    turns = [[{"from": "human", "value": "Q?"}, {"from": "gpt", "value": "A."}]] * 2
    extras: dict[str, Any] = {
        "timestamp": pa.array([dt.datetime(2024, 1, 1), None], pa.timestamp("us")),
        "timestamp_tz": pa.array([dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)] * 2, pa.timestamp("ms", "UTC")),
        "date": pa.array([dt.date(2024, 1, 2)] * 2, pa.date32()),
        "time": pa.array([dt.time(1, 2)] * 2, pa.time64("us")),
        "duration": pa.array([dt.timedelta(seconds=3)] * 2, pa.duration("s")),
        "bytes": pa.array([b"\x00\xff", b"text"], pa.binary()),
        "decimal": pa.array([decimal.Decimal("1.10"), None], pa.decimal128(5, 2)),
        "big_decimal": pa.array([decimal.Decimal("1" * 30)] * 2, pa.decimal128(38, 0)),
        "uint64": pa.array([2**64 - 1, 0], pa.uint64()),
        "float_nan": pa.array([float("nan"), float("inf")], pa.float64()),
        "struct": pa.array([{"a": 1, "b": dt.datetime(2024, 1, 1)}] * 2),
        "list_of_ts": pa.array([[dt.datetime(2024, 1, 1)]] * 2),
        "map": pa.array([[("k", 1)]] * 2, pa.map_(pa.string(), pa.int64())),
        "dictionary": pa.array(["x", "y"]).dictionary_encode(),
    }
    for name, col in extras.items():
        d = root / name
        d.mkdir(parents=True, exist_ok=True)
        path = d / f"{name}.parquet"
        table = pa.table({"id": ["p1", "p2"], "conversations": pa.array(turns), name: col})
        pq.write_table(table, path)
        kept, q = d / "kept.jsonl", d / "q.jsonl"
        yield Case(f"parquet/{name}/validate", ["data", "validate", str(path), "--out", str(kept), "--quarantine",
                                                str(q)], records=2, kept_file=kept, quarantine=q)
        yield Case(f"parquet/{name}/to-parquet", ["data", "validate", str(path), "--out", str(d / "x.parquet")],
                   inputs=0)
        yield Case(f"parquet/{name}/to-hf", ["data", "convert", str(path), "--out", str(d / "hf"), "--format", "hf"],
                   inputs=0)
    # a bad-typed turns column (ints) and a text column holding deep JSON
    d = root / "bad_columns"
    d.mkdir(parents=True, exist_ok=True)
    path = d / "bad.parquet"
    pq.write_table(pa.table({"conversations": pa.array(["[" * 50_000, "[{\"from\": 1}]"]),
                             "id": pa.array([1, 2])}), path)
    kept, q = d / "kept.jsonl", d / "q.jsonl"
    yield Case("parquet/bad_columns", ["data", "validate", str(path), "--out", str(kept), "--quarantine", str(q)],
               records=2, kept_file=kept, quarantine=q)


@family("data")
def cli_usage(root: Path) -> Iterator[Case]:
    """Options out of range or of the wrong type: exit 2 with a usage message."""
    root.mkdir(parents=True, exist_ok=True)
    src = root / "ok.jsonl"
    src.write_text(_dump(_good("sharegpt", 1)) + "\n", encoding="utf-8")
    bad_calls = [
        ["data", "split", str(src), "--out-dir", str(root / "s"), "--test-size", "2"],
        ["data", "split", str(src), "--out-dir", str(root / "s"), "--test-size", "0"],
        ["data", "split", str(src), "--out-dir", str(root / "s"), "--test-size", "abc"],
        ["data", "split", str(src), "--out-dir", str(root / "s"), "--format", "xml"],
        ["data", "split", str(src), "--out-dir", str(root / "s"), "--prompt-threshold", "7"],
        ["data", "dedup", str(src), "--out", str(root / "d.jsonl"), "--threshold", "0"],
        ["data", "clean", str(src), "--out", str(root / "c.jsonl"), "--format", "yaml"],
        ["data", "convert", str(src), "--out", str(root / "c.txt")],
        ["data", "validate", str(src), "--out", str(root / "c.csv")],
        ["data", "validate", str(src), "--max-chars", "many"],
        ["data", "validate"],
        ["data", "nonsense"],
        ["data", "validate", str(src), "--split", "validation"],
    ]
    for i, args in enumerate(bad_calls):
        yield Case(f"usage/{i}", args, expect="either" if "--split" in args else "usage", inputs=0)


# ============================================================================================ training configs

@family("config")
def broken_train_configs(root: Path) -> Iterator[Case]:
    """Broken recipes for `sagpt train --plan`: each must be exit 2 naming the file (nothing is trained)."""
    root.mkdir(parents=True, exist_ok=True)
    base = "name: t\nmodel: tiny-random\nseq_len: 64\n"
    texts: dict[str, str | bytes] = {
        "list_top.yaml": "- a\n- b\n",
        "scalar_top.yaml": "42\n",
        "bad_indent.yaml": "name: x\n  seq_len: 3\n",
        "tab.yaml": "name:\tx\n\tseq_len: 1\n",
        "unclosed.yaml": "name: [x\n",
        "unknown_key.yaml": base + "learning_rate: 1e-4\n",
        "typo_key.yaml": base + "seqlen: 64\n",
        "seq_len_str.yaml": "seq_len: long\n",
        "seq_len_neg.yaml": "seq_len: -5\n",
        "seq_len_small.yaml": "seq_len: 3\n",
        "lr_zero.yaml": "lr: 0\n",
        "lr_str.yaml": "lr: fast\n",
        "epochs_neg.yaml": "epochs: -1\n",
        "batch_zero.yaml": "batch_size: 0\n",
        "grad_accum_float.yaml": "grad_accum: 1.5\n",
        "quant_bad.yaml": "quantization: int3\n",
        "precision_bad.yaml": "precision: fp8\n",
        "lora_list.yaml": "lora: [1, 2]\n",
        "lora_r_zero.yaml": "lora:\n  r: 0\n",
        "lora_unknown.yaml": "lora:\n  rank: 8\n",
        "lora_dropout_one.yaml": "lora:\n  dropout: 1.0\n",
        "phases_str.yaml": "phases: curriculum\n",
        "phase_no_name.yaml": "phases:\n  - epochs: 1\n",
        "phase_unknown.yaml": "phases:\n  - name: a\n    foo: 1\n",
        "bad_date.yaml": "name: 2024-13-45\n",
        "deep.yaml": "a: " + "[" * 1000 + "]" * 1000 + "\n",
        "latin1.yaml": "name: caf\xe9\n".encode("latin-1"),
        "binary.yaml": bytes(range(256)),
        "markup.yaml": "name: '[/]'\nseq_len: '[bold]x[/]'\n",
        "huge_int.yaml": "seq_len: " + "9" * 5000 + "\n",
        "anchor_bomb.yaml": "a: &a [x, x]\nb: &b [*a, *a]\nc: &c [*b, *b]\nd: [*c, *c]\nseq_len: x\n",
        "python_tag.yaml": "name: !!python/object/apply:os.system ['true']\n",
        "dup_keys.yaml": "seq_len: 64\nseq_len: x\n",
        "null_values.yaml": "seq_len: null\nlr: ~\n",
        "warmup_one.yaml": "warmup_ratio: 1\n",
        "max_steps_zero.yaml": "max_steps: 0\n",
        "grad_norm_neg.yaml": "max_grad_norm: -1\n",
        "target_modules_str.yaml": "lora:\n  target_modules: 7\n",
    }
    for name, text in texts.items():
        p = root / name
        p.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
        yield Case(f"config/{name}", ["train", "--config", str(p), "--plan"], expect="usage", mentions=[name])
    yield Case("config/dir", ["train", "--config", str(root), "--plan"], expect="usage", mentions=[root.name])
    yield Case("config/missing", ["train", "--config", str(root / "nope.yaml"), "--plan"], expect="usage",
               mentions=["nope.yaml"])
    ok = root / "ok.yaml"
    ok.write_text(base, encoding="utf-8")
    for i, override in enumerate(["[/x]", "lr=[/x]", "seq_len=[bold]", "=3", "lora.r=abc", "lora=[1]",
                                  "seq_len=" + "9" * 5000, "phases=[{}]"]):
        yield Case(f"config/override{i}", ["train", "--config", str(ok), "--plan", override], expect="usage",
                   inputs=1)


def main(argv: list[str] | None = None) -> None:
    import argparse
    import tempfile

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--families", nargs="*", default=None)
    ap.add_argument("--show", type=int, default=15, help="print this many failing cases")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--slowest", type=int, default=0)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="corpus-") as tmp:
        cases = build_cases(Path(tmp), args.families)
        runner = make_runner()
        outcomes = [run_case(c, runner) for c in cases]
    summary = summarise(outcomes)
    by_family = Counter((o.case.name.split("/")[0], o.kind) for o in outcomes)
    print(json.dumps(summary))
    print(json.dumps({f"{a}:{b}": n for (a, b), n in sorted(by_family.items())}))
    for o in sorted(outcomes, key=lambda o: -o.seconds)[: args.slowest]:
        print(f"{o.seconds:6.2f}s {o.case.name}")
    for o in [o for o in outcomes if o.kind != "ok"][: args.show]:
        print(f"{o.kind:12} {o.case.name}: {o.detail}")
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "failures": [
            {"case": o.case.name, "kind": o.kind, "detail": o.detail} for o in outcomes if o.kind != "ok"]},
            indent=1))


if __name__ == "__main__":
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 1000))
    main()
