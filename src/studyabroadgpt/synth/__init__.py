"""Grounded conversation synthesis from the knowledge base: ``plan`` (personas, destination × topic balance),
``template`` (the offline writer), ``llm`` (the OpenAI-compatible writer) and ``generate`` (plan → write → audit →
keep or quarantine). Entry point: ``from studyabroadgpt.synth.generate import generate, synthesize``.
"""
