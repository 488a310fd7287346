"""A stand-in for vLLM's OpenAI server, for the proxy tests: answers every chat completion with a fixed reply
(streamed in OpenAI chunks, usage last) and records what it was asked. Run as a script it serves on
``--port`` like ``vllm serve`` does, so the subprocess management is tested too."""
from __future__ import annotations

import argparse
import json
import time

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse


def make_upstream(reply: str) -> FastAPI:
    app = FastAPI()
    app.state.requests = []

    @app.get("/health")
    async def health():
        return {}

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await request.json()
        app.state.requests.append(body)
        if any("TOO_LONG" in m["content"] for m in body["messages"]):
            return JSONResponse({"error": {"message": "This model's maximum context length is 2048 tokens",
                                           "type": "BadRequestError", "code": 400}}, status_code=400)
        words = reply.split(" ")
        usage = {"prompt_tokens": 50, "completion_tokens": len(words), "total_tokens": 50 + len(words)}
        base = {"id": "cmpl-up", "created": int(time.time()), "model": body["model"]}
        if not body.get("stream"):
            return {**base, "object": "chat.completion", "usage": usage,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": reply},
                                 "finish_reason": "stop"}]}

        def events():
            for i, w in enumerate(words):
                delta = {"content": (" " if i else "") + w}
                yield "data: " + json.dumps({**base, "object": "chat.completion.chunk",
                                             "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}) + "\n\n"
            yield "data: " + json.dumps({**base, "object": "chat.completion.chunk",
                                         "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}) + "\n\n"
            if (body.get("stream_options") or {}).get("include_usage"):
                yield "data: " + json.dumps({**base, "object": "chat.completion.chunk", "choices": [],
                                             "usage": usage}) + "\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


if __name__ == "__main__":
    import uvicorn

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--reply", default="In London you need £1,900 per month for up to 9 months.")
    args, _ = parser.parse_known_args()
    uvicorn.run(make_upstream(args.reply), host="127.0.0.1", port=args.port, log_level="warning")
