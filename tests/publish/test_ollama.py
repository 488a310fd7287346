"""The Modelfile's Go chat template must render exactly what the HF tokenizer's Jinja template renders.

There is no Go (or Ollama) here, so the test translates the Go template into Jinja mechanically: the subset it
uses ({{- if}}, {{ range }}, {{ end }}, ne, field access) maps one-to-one, including the `{{-` whitespace
trimming, which Jinja's `{%-` does the same way. Then both templates render the same conversations.
"""
from __future__ import annotations

import re

import jinja2
import pytest

from studyabroadgpt.publish import PublishError
from studyabroadgpt.publish.ollama import (CHATML_GO_TEMPLATE, default_system_prompt, modelfile_text,
                                           parse_modelfile, render_chatml, stop_tokens, template_family)


def go_to_jinja(go: str) -> str:
    stack: list[str] = []

    def expr(body: str) -> str:
        body = re.sub(r'^ne (\S+) "(\w+)"$', r'\1 != "\2"', body)
        return body.replace(".Role", "msg.Role").replace(".Content", "msg.Content").replace(".System", "System")

    def action(m: re.Match) -> str:
        left, body, right = m.group(1), m.group(2).strip(), m.group(3)
        if body.startswith("range "):
            stack.append("for")
            return "{%" + left + " for msg in Messages " + right + "%}"
        if body.startswith("if "):
            stack.append("if")
            return "{%" + left + " if " + expr(body[3:]) + " " + right + "%}"
        if body == "end":
            return "{%" + left + " end" + stack.pop() + " " + right + "%}"
        return "{{" + left + " " + expr(body) + " " + right + "}}"

    out = re.sub(r"\{\{(-?)(.*?)(-?)\}\}", action, go)
    assert not stack, "unbalanced Go template"
    return out


def render_go(system, messages):
    env = jinja2.Environment(keep_trailing_newline=True)
    msgs = [{"Role": m["role"], "Content": m["content"]} for m in messages]
    return env.from_string(go_to_jinja(CHATML_GO_TEMPLATE)).render(System=system, Messages=msgs)


CONVERSATIONS = [
    [{"role": "user", "content": "Can I work in Canada on a study permit?"}],
    [{"role": "system", "content": "You are a careful advisor."},
     {"role": "user", "content": "IELTS or TOEFL for Australia?"},
     {"role": "assistant", "content": "Both are widely accepted; check the university page."},
     {"role": "user", "content": "And for a visa?"}],
]


@pytest.mark.parametrize("messages", CONVERSATIONS)
def test_go_template_renders_like_the_hf_template(tiny_model, messages):
    _, tok = tiny_model
    hf = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    # Ollama puts system messages into .System; without one, the Modelfile SYSTEM (the template default) is used.
    system = next((m["content"] for m in messages if m["role"] == "system"), default_system_prompt(tok))
    assert render_go(system, messages) == hf
    assert render_chatml(system, messages) == hf


def test_modelfile_fields(tiny_model, tmp_path):
    _, tok = tiny_model
    path = tmp_path / "Modelfile"
    path.write_text(modelfile_text("model-q8_0.gguf", tok, system="Check official sources.", num_ctx=2048))
    mf = parse_modelfile(path)
    assert mf["from"] == "./model-q8_0.gguf"
    assert mf["template"] == CHATML_GO_TEMPLATE
    assert mf["system"] == "Check official sources."
    params = mf["parameters"]
    assert ("stop", "<|im_end|>") in params and ("stop", "<|im_start|>") in params
    assert ("num_ctx", "2048") in params and ("temperature", "0.2") in params
    assert set(stop_tokens(tok)) >= {tok.eos_token}


def test_default_system_prompt_is_the_templates(tiny_model, tmp_path):
    _, tok = tiny_model
    assert default_system_prompt(tok) == "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
    path = tmp_path / "Modelfile"
    path.write_text(modelfile_text("m.gguf", tok))
    assert parse_modelfile(path)["system"] == default_system_prompt(tok)


def test_non_chatml_template_is_refused(tiny_model):
    import copy

    _, tok = tiny_model
    mistral = copy.deepcopy(tok)
    mistral.chat_template = ("{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}"
                             "[INST] {{ m['content'] }} [/INST]{% else %}{{ m['content'] }}{{ eos_token }}"
                             "{% endif %}{% endfor %}")
    with pytest.raises(PublishError, match="not ChatML"):
        template_family(mistral)
    with pytest.raises(PublishError):
        modelfile_text("m.gguf", mistral)
