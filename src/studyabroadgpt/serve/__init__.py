"""Serve and chat: an OpenAI-compatible API, a web chat page and a terminal chat, all grounded in the
knowledge base with numbered citations and checked by a factuality gate (see docs/serving.md)."""
