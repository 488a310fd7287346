"""A server for the overload test, in its own process (so the 64 test clients do not share its GIL).

``python -m tests.serve.overload_server PORT`` serves a slow scripted model (~19 s per answer) with 4 slots, 16
queue places and a 15 s queue timeout.
"""
from __future__ import annotations

import sys

import uvicorn

from studyabroadgpt.serve.answer import Answerer
from studyabroadgpt.serve.app import create_app
from studyabroadgpt.serve.generation import ScriptedGenerator
from studyabroadgpt.serve.settings import ServeSettings

SETTINGS = ServeSettings(rag=False, gate=False, max_concurrency=4, max_queue=16, queue_timeout_s=15.0)

if __name__ == "__main__":
    slow = ScriptedGenerator("A slow but steady answer about visas and funds.", piece_chars=2, delay_s=0.8)
    uvicorn.run(create_app(slow, Answerer(None, None), SETTINGS), host="127.0.0.1", port=int(sys.argv[1]),
                log_level="warning")
