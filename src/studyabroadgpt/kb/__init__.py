"""The sourced knowledge base: loading and checking (``store``), hybrid retrieval (``search``), and the claim
audit (``claims`` finds checkable claims, ``audit`` judges them). See docs/knowledge-base.md and
docs/synthesis-and-audit.md.

Submodules are imported on use so that ``import studyabroadgpt.kb`` stays cheap (no encoder, no torch).
"""
