"""The request-body part of the bad-input corpus (issue 14): 250+ generated bad bodies and headers sent to the
real server over HTTP. Every one must get a clean answer — a JSON error with a message (400/401/404/405/413) or,
where the value is merely lax (``"stream": "true"``), a normal 200 — never a 500, a 502 or a traceback.
"""
from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass, field

import httpx
import pytest

from studyabroadgpt.serve.answer import Answerer
from studyabroadgpt.serve.app import create_app
from studyabroadgpt.serve.generation import ScriptedGenerator
from studyabroadgpt.serve.settings import ServeSettings
from tests.serve.conftest import running

KEY = "s3cret"
USER = {"role": "user", "content": "How much money do I need for a UK Student visa?"}
ERR = frozenset({400})
LAX = frozenset({200, 400})  # a value pydantic may coerce ("10" for an int) or the server may take as given


@dataclass
class Case:
    name: str
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    allowed: frozenset[int] = ERR
    method: str = "POST"
    path: str = "/v1/chat/completions"
    auth: bool = True  # send the right key


def _j(obj) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode("utf-8", "surrogatepass")


def _with(**fields) -> bytes:
    return _j({"messages": [USER], **fields})


def cases() -> list[Case]:
    out: list[Case] = []
    # --- malformed JSON
    good = _with()
    for cut in (1, 5, 10, 20, len(good) // 2, len(good) - 1):
        out.append(Case(f"json/truncated-{cut}", good[:cut]))
    for i, raw in enumerate([b"", b" ", b"\n\n", b"{", b"}", b"{,}", b"{'messages': []}", b'{"messages": [USER]}',
                             b'{"messages": [],}', b'{"messages" [] }', b"/* c */ {}", b'{"a": 1} {"b": 2}',
                             b'{"messages": "\\x41"}', b'{"messages": "\\u12"}', b'{"messages": "a\x01b"}',
                             "{\"é\": 1}".encode("latin-1"),
                             b"null", b"true", b"42", b'"just a string"', b"[]", b"[[[]]]", b'{"messages": NaN}',
                             b'{"messages": [' + _j(USER) + b'], "temperature": NaN}',
                             b'{"messages": [' + _j(USER) + b'], "temperature": Infinity}',
                             b'{"messages": [' + _j(USER) + b'], "temperature": -Infinity}']):
        out.append(Case(f"json/malformed-{i}", raw))
    # JSON in UTF-8 with a BOM or in UTF-16 is still JSON (RFC 8259 readers may accept it): either answer is fine
    out.append(Case("json/utf8-bom", b"\xef\xbb\xbf" + good, allowed=LAX))
    out.append(Case("json/utf16", good.decode().encode("utf-16"), allowed=LAX))
    rng = random.Random(14)
    for i in range(12):
        out.append(Case(f"json/random-bytes-{i}", bytes(rng.randrange(256) for _ in range(rng.randint(1, 400)))))
    # --- wrong types, field by field
    wrong = [None, "text", 1, -1, 1.5, True, [], {}, [1], ["x"], {"a": 1}]
    for value in wrong:
        out.append(Case(f"type/messages={value!r}", _j({"messages": value})))
    for value in [None, 1, True, [], {}, "x", [USER, 1], [USER, None], [USER, "hi"]]:
        out.append(Case(f"type/message-item={value!r}", _j({"messages": [value] if value is not None else [None]})))
    for value in [1, 1.5, True, {}, [1], [None], [{"type": "image_url", "image_url": {"url": "https://x"}}],
                  [{"type": "text", "text": 1}], [{"type": "text"}], [{"text": "hi"}], ["hi"]]:
        out.append(Case(f"type/content={value!r}", _j({"messages": [{"role": "user", "content": value}]})))
    per_field = {
        "model": ([1, [], {}, True], LAX), "stream": (["maybe", 2, [], {}, "yes please"], ERR),
        "max_tokens": (["ten", -1, 0, 1.5, [], {}, 10**9], ERR), "max_completion_tokens": (["x", 0, -5, [], 10**9], ERR),
        "temperature": (["hot", -1, 2.5, 100, [], {}], ERR), "top_p": ([0, -0.1, 1.5, "x", []], ERR),
        "seed": ([1.5, "abc", [], {}, 2**64, -(2**64), 2**70], ERR), "rag": (["maybe", 3, [], {}], ERR),
        "answer_mode": (["fast", 1, [], "GENERATE", ""], ERR), "user": ([1, [], {}], LAX),
    }
    for name, (values, allowed) in per_field.items():
        for value in values:
            out.append(Case(f"type/{name}={value!r}", _with(**{name: value}), allowed=allowed))
    for name, value in [("max_tokens", "10"), ("stream", "true"), ("temperature", "0.5"), ("seed", "7"),
                        ("rag", "false"), ("max_tokens", 5.0)]:
        out.append(Case(f"lax/{name}={value!r}", _with(**{name: value}), allowed=LAX))
    # --- huge numbers
    for name in ("max_tokens", "max_completion_tokens", "temperature", "top_p", "seed"):
        for raw in (b"1" + b"0" * 400, b"-" + b"9" * 400, b"9" * 5000, b"1e400", b"-1e400", b"1e-400", b"1" * 4301):
            body = b'{"messages": [' + _j(USER) + b'], "' + name.encode() + b'": ' + raw + b"}"
            out.append(Case(f"number/{name}={raw[:12].decode()}...({len(raw)})", body,
                            allowed=LAX if raw == b"1e-400" else ERR))  # 1e-400 is 0.0: a fine value
    out.append(Case("number/in-ignored-field", b'{"messages": [' + _j(USER) + b'], "logprobs": ' + b"7" * 5000 + b"}"))
    # --- lone surrogates (escaped in JSON, as a client would send them)
    for i, esc in enumerate(["\\ud800", "\\udfff", "hi \\ud83d", "\\ude00 tail", "\\ud800\\ud800"]):
        for where in ("content", "part", "model", "user", "role", "key"):
            if where == "content":
                body = '{"messages": [{"role": "user", "content": "' + esc + '"}]}'
            elif where == "part":
                body = '{"messages": [{"role": "user", "content": [{"type": "text", "text": "' + esc + '"}]}]}'
            elif where == "role":
                body = '{"messages": [{"role": "' + esc + '", "content": "hi"}]}'
            elif where == "key":
                body = '{"messages": [{"role": "user", "content": "hi"}], "' + esc + '": 1}'
            else:
                body = '{"messages": [{"role": "user", "content": "hi"}], "' + where + '": "' + esc + '"}'
            out.append(Case(f"surrogate/{where}-{i}", body.encode(), allowed=LAX if where == "key" else ERR))
    out.append(Case("surrogate/valid-pair", b'{"messages": [{"role": "user", "content": "\\ud83d\\ude00 UK?"}]}',
                    allowed=frozenset({200})))
    # --- nesting depth
    for depth in (1_000, 10_000, 100_000):
        out.append(Case(f"depth/array-{depth}", b"[" * depth + b"]" * depth))
        out.append(Case(f"depth/open-array-{depth}", b"[" * depth))
        out.append(Case(f"depth/object-{depth}", b'{"a":' * depth + b"1" + b"}" * depth,
                        allowed=frozenset({400, 413})))  # 600 kB at 100,000 levels: over the size cap first
        nested = b'{"messages": [' + _j(USER) + b'], "metadata": ' + b"[" * depth + b"]" * depth + b"}"
        out.append(Case(f"depth/in-ignored-field-{depth}", nested, allowed=LAX))
        parts = b'{"messages": [{"role": "user", "content": [' + b"[" * depth + b"]" * depth + b"]}]}"
        out.append(Case(f"depth/in-content-{depth}", parts))
    # --- roles
    for role in ["wizard", "", "USER", "User", None, 1, ["user"], {"r": "user"}, "function", "system ", "bot"]:
        out.append(Case(f"role/{role!r}", _j({"messages": [{"role": role, "content": "hi"}]})))
    for only in ("system", "assistant", "tool", "developer"):
        out.append(Case(f"role/only-{only}", _j({"messages": [{"role": only, "content": "hi"}]})))
    out.append(Case("role/missing", _j({"messages": [{"content": "hi"}]})))
    # --- oversize
    out.append(Case("size/content-300k", _j({"messages": [{"role": "user", "content": "x" * 300_000}]}),
                    allowed=frozenset({413})))
    out.append(Case("size/ignored-field-300k", _with(padding="y" * 300_000), allowed=frozenset({413})))
    out.append(Case("size/10k-messages", _j({"messages": [USER] * 10_000}), allowed=frozenset({413})))
    out.append(Case("size/multibyte-300k", _j({"messages": [{"role": "user", "content": "€" * 100_000}]}),
                    allowed=frozenset({413})))
    out.append(Case("size/max-tokens-over-cap", _with(max_tokens=5000)))
    # --- headers and methods
    for ctype in ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "", "∂/∂"]:
        out.append(Case(f"header/content-type={ctype!r}", good, headers={"content-type": ctype}, allowed=LAX))
    for auth in ["", "Bearer", "Bearer wrong", "Basic czNjcmV0", "s3cret", "Bearer s3cret extra",
                 "Bearer " + "k" * 8000, "Bearer s3crét", "Token s3cret"]:
        out.append(Case(f"auth/{auth[:20]!r}", good, headers={"authorization": auth}, auth=False,
                        allowed=frozenset({401})))
        out.append(Case(f"auth/{auth[:20]!r}+malformed-body", b"{oops", headers={"authorization": auth}, auth=False,
                        allowed=frozenset({401})))
    out.append(Case("auth/lowercase-scheme", good, headers={"authorization": "bearer " + KEY}, auth=False,
                    allowed=frozenset({200})))
    for rid in ["x" * 10_000, "a b", "\u00e9", "<script>", ""]:
        out.append(Case(f"header/x-request-id={rid[:10]!r}", good, headers={"x-request-id": rid},
                        allowed=frozenset({200})))
    out.append(Case("header/accept-weird", good, headers={"accept": "image/png"}, allowed=frozenset({200})))
    out.append(Case("method/get", None, method="GET", allowed=frozenset({405})))
    out.append(Case("method/put", good, method="PUT", allowed=frozenset({405})))
    out.append(Case("method/delete", None, method="DELETE", allowed=frozenset({405})))
    out.append(Case("path/unknown", good, path="/v1/chat/completion", allowed=frozenset({404})))
    out.append(Case("path/models-post", good, path="/v1/models", allowed=frozenset({405})))
    out.append(Case("path/static-traversal", None, method="GET", path="/static/..%2F..%2Fapp.py",
                    allowed=frozenset({404})))
    out.append(Case("path/encoded-surrogate", None, method="GET", path="/static/%ED%A0%80.js",
                    allowed=frozenset({404})))
    return out


CASES = cases()


@pytest.fixture(scope="module")
def server():
    settings = ServeSettings(rag=False, gate=False, api_key=KEY)
    with running(create_app(ScriptedGenerator("You need £1,483 per month."), Answerer(None, None), settings)) as b:
        yield b


@pytest.mark.timeout(600)
def test_bad_request_bodies_and_headers_get_clean_answers(server):
    assert len(CASES) >= 200
    outcomes: Counter = Counter()
    wrong = []
    with httpx.Client(timeout=60) as client:
        for case in CASES:
            headers = {"content-type": "application/json", **case.headers}
            if case.auth:
                headers.setdefault("authorization", f"Bearer {KEY}")
            raw_headers = [(k.encode(), v.encode("utf-8")) for k, v in headers.items()]  # non-ASCII bytes too
            r = client.request(case.method, server + case.path, content=case.body, headers=raw_headers)
            outcomes[r.status_code] += 1
            problem = None
            if r.status_code not in case.allowed:
                problem = f"status {r.status_code}, expected {sorted(case.allowed)}"
            elif "Traceback" in r.text or "File \"" in r.text:
                problem = "traceback in the response"
            elif r.status_code >= 400:
                try:
                    err = r.json()["error"]
                    if not (isinstance(err.get("message"), str) and err["message"]):
                        problem = "error without a message"
                except (ValueError, KeyError, TypeError):
                    problem = f"error body is not the JSON error shape: {r.text[:120]!r}"
            if problem:
                wrong.append((case.name, problem, r.text[:200]))
        assert client.get(server + "/health").json()["status"] == "ok"
    print(f"\nrequest-body corpus: {len(CASES)} cases, status counts {dict(sorted(outcomes.items()))}, "
          f"{len(wrong)} not clean")
    assert not wrong, [w[:2] for w in wrong]
    assert not ({500, 502} & set(outcomes))
