"""A local stand-in for the Hugging Face Hub HTTP API, enough for `create_repo` + `upload_folder` + card validation.

It implements the endpoints `huggingface_hub` calls for a push (repo creation, YAML validation, preupload,
commit), stores every committed file's bytes, and records each call, so a test can drive the real client through
`HF_ENDPOINT` and check exactly what arrived. Every file is answered as a "regular" (non-LFS) upload, so contents
travel base64-encoded inside the commit's NDJSON payload.
"""
from __future__ import annotations

import base64
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import yaml


@dataclass
class HubState:
    calls: list[tuple[str, str]] = field(default_factory=list)
    repos: dict[str, dict[str, Any]] = field(default_factory=dict)  # "model:user/name" -> {"private", "files"}
    commits: list[dict[str, Any]] = field(default_factory=list)
    validated: list[dict[str, Any]] = field(default_factory=list)
    auth: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Authorization header)


def _handler(state: HubState):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep pytest output clean
            pass

        def _send(self, code: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def do_GET(self):  # noqa: N802
            state.calls.append(("GET", self.path))
            self._send(404, {"error": "not found"})

        def do_POST(self):  # noqa: N802
            path = self.path.split("?")[0]
            state.calls.append(("POST", path))
            state.auth.append((path, self.headers.get("authorization")))
            body = self._body()
            if path == "/api/validate-yaml":
                payload = json.loads(body)
                meta = yaml.safe_load(payload["content"].split("---")[1])
                state.validated.append({"repoType": payload.get("repoType"), "metadata": meta})
                if not isinstance(meta, dict):
                    return self._send(400, {"error": "metadata is not a mapping"})
                return self._send(200, {})
            if path == "/api/repos/create":
                payload = json.loads(body)
                repo_id = f"{payload['organization']}/{payload['name']}"
                key = f"{payload.get('type') or 'model'}:{repo_id}"
                state.repos.setdefault(key, {"private": payload.get("private", payload.get("visibility") == "private"),
                                             "files": {}})
                return self._send(200, {"url": f"http://{self.headers['Host']}/{repo_id}", "name": repo_id})
            parts = path.strip("/").split("/")  # api/{type}s/{user}/{name}/{preupload|commit}/{revision}
            if len(parts) == 6 and parts[0] == "api" and parts[4] in ("preupload", "commit"):
                repo_type, repo_id = parts[1].rstrip("s"), f"{parts[2]}/{parts[3]}"
                repo = state.repos.get(f"{repo_type}:{repo_id}")
                if repo is None:
                    return self._send(404, {"error": f"Repository {repo_id} not found"})
                if parts[4] == "preupload":
                    files = json.loads(body)["files"]
                    return self._send(200, {"files": [{"path": f["path"], "uploadMode": "regular",
                                                       "shouldIgnore": False} for f in files]})
                lines = [json.loads(x) for x in body.decode().splitlines() if x.strip()]
                header = next(x["value"] for x in lines if x["key"] == "header")
                added = {}
                for item in lines:
                    if item["key"] == "file":
                        added[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                repo["files"].update(added)
                state.commits.append({"repo": f"{repo_type}:{repo_id}", "summary": header["summary"],
                                      "files": sorted(added)})
                oid = f"{len(state.commits):040x}"
                url = f"http://{self.headers['Host']}/{repo_id}/commit/{oid}"
                return self._send(200, {"commitUrl": url, "commitOid": oid})
            self._send(404, {"error": f"unexpected endpoint {path}"})

    return Handler


class FakeHub:
    def __init__(self) -> None:
        self.state = HubState()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.state))
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> "FakeHub":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
