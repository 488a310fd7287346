"""The web chat page in real headless Chromium (Debian's chromium + chromium-driver, driven by Selenium):
type a question, watch the answer stream in, check the citation, the sources panel and the fact-check note,
and save a screenshot (``$SAGPT_SCREENSHOT_DIR`` keeps a copy for people to look at)."""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from studyabroadgpt.serve.app import create_app
from studyabroadgpt.serve.generation import ScriptedGenerator
from studyabroadgpt.serve.settings import ServeSettings

# Checks what is done to generated text: auto would answer these rule questions from the facts.
pytestmark = pytest.mark.usefixtures("generated_rule_answers")


REPLY = ("For a course in **London** you must show £1,900 per month for up to 9 months, and the money must "
         "have been held for 28 consecutive days.\n\n- keep your bank statements\n- apply early")


@pytest.fixture()
def browser(chromium):
    return chromium(1280, 900)


def test_page_streams_a_grounded_answer_with_citation(browser, serve, answerer, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    gen = ScriptedGenerator(REPLY, piece_chars=6, delay_s=0.06)  # ~2.5 s of visible streaming
    with serve(create_app(gen, answerer, ServeSettings())) as base:
        browser.get(base + "/")
        wait = WebDriverWait(browser, 30)
        wait.until(lambda d: d.find_element(By.ID, "model").text == "scripted")
        box = browser.find_element(By.ID, "question")
        box.send_keys("How much money do I need to show for a UK student visa if I study in London?")
        browser.find_element(By.ID, "send").click()

        # Streaming: the answer grows while the message is still marked as streaming.
        seen = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            msgs = browser.find_elements(By.CSS_SELECTOR, ".msg.assistant")
            if msgs:
                if msgs[-1].get_attribute("data-done"):
                    break
                if "streaming" in msgs[-1].get_attribute("class"):
                    seen.append(len(msgs[-1].text))
            time.sleep(0.1)
        answer = browser.find_elements(By.CSS_SELECTOR, ".msg.assistant")[-1]
        assert answer.get_attribute("data-done") == "1", answer.text
        partial = [n for n in seen if n > 0]
        assert len(set(partial)) >= 3, f"expected several partial renders while streaming, saw {seen}"

        # Markdown rendered (bold and a list), the corrected figure shown with a clickable citation.
        assert answer.find_element(By.TAG_NAME, "strong").text == "London"
        assert len(answer.find_elements(By.CSS_SELECTOR, "ul li")) >= 2
        caveat = answer.find_element(By.CSS_SELECTOR, ".body em")  # the italic caveat, its link intact
        assert "gov.uk" in caveat.find_element(By.TAG_NAME, "a").get_attribute("href")
        body = answer.find_element(By.CLASS_NAME, "body").text
        assert "1,483" in body and "£1,900" not in body.split("Fact check")[0]
        cites = answer.find_elements(By.CSS_SELECTOR, "a.cite")
        assert cites, "no citation link in the answer"

        # The gate's note is visible, and the sources panel lists the cited official source.
        note = answer.find_element(By.CLASS_NAME, "gate-note")
        assert note.is_displayed() and "corrected" in note.text.lower() and "1,900" in note.text
        n = cites[0].get_attribute("data-cite")
        source = browser.find_element(By.ID, f"src-{n}")
        assert "gov.uk" in source.find_element(By.TAG_NAME, "a").get_attribute("href")
        cites[0].click()
        wait.until(lambda d: "flash" in d.find_element(By.ID, f"src-{n}").get_attribute("class"))

        shot = tmp_path / "chat.png"
        assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
        keep = os.environ.get("SAGPT_SCREENSHOT_DIR")
        if keep:
            Path(keep).mkdir(parents=True, exist_ok=True)
            shutil.copy(shot, Path(keep) / "chat.png")


def test_page_shows_server_errors(browser, serve, answerer):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    with serve(create_app(ScriptedGenerator("hi"), answerer, ServeSettings(api_key="k"))) as base:
        browser.get(base + "/")
        wait = WebDriverWait(browser, 30)
        wait.until(lambda d: d.find_element(By.ID, "apikey").is_displayed())  # /health says a key is needed
        browser.find_element(By.ID, "question").send_keys("Do I need a visa?")
        browser.find_element(By.ID, "send").click()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".msg.error"))
        assert "API key" in browser.find_element(By.CSS_SELECTOR, ".msg.error").text


# ------------------------------------------------------------------------------------------------- renderer fuzz

MARKDOWN_JS = Path(__file__).resolve().parents[2] / "src" / "studyabroadgpt" / "serve" / "static" / "markdown.js"

# Runs in the browser: render each input, parse the HTML into a detached element, and report any element or
# attribute outside the renderer's fixed set, any link that is not http(s) or a citation, and the slowest render.
FUZZ_HARNESS = r"""
const inputs = arguments[0];
const TAGS = new Set(["P", "H3", "H4", "H5", "H6", "UL", "OL", "LI", "BLOCKQUOTE", "PRE", "CODE", "STRONG", "EM",
                      "BR", "A"]);
const ATTRS = {A: new Set(["href", "target", "rel", "class", "data-cite"])};
const bad = [];
let slowest = 0, n = 0;
const box = document.createElement("div");
document.body.appendChild(box);
for (let i = 0; i < inputs.length; i++) {
  const t0 = performance.now();
  let html;
  try { html = SafeMarkdown.render(inputs[i]); } catch (e) { bad.push([i, "threw " + e]); continue; }
  slowest = Math.max(slowest, performance.now() - t0);
  box.innerHTML = html;  // live in the document, as on the page
  for (const el of box.querySelectorAll("*")) {
    n++;
    if (!TAGS.has(el.tagName)) bad.push([i, "element " + el.tagName]);
    for (const a of el.attributes) {
      if (!(ATTRS[el.tagName] || new Set()).has(a.name)) bad.push([i, "attribute " + a.name + " on " + el.tagName]);
    }
    if (el.tagName === "A" && !/^(https?:\/\/|#src-\d{1,2}$)/.test(el.getAttribute("href") || "")) {
      bad.push([i, "link " + el.getAttribute("href")]);
    }
    el.dispatchEvent(new MouseEvent("mouseover", {bubbles: true}));  // an injected handler would run now
  }
  box.innerHTML = "";
}
box.remove();
return {bad: bad.slice(0, 20), n_bad: bad.length, slowest_ms: slowest, elements: n, pwned: window.__pwned || 0};
"""

PAYLOADS = [
    '<script>window.__pwned = 1</script>', '<img src=x onerror="window.__pwned=1">',
    '<svg onload=window.__pwned=1>', '"><img src=x onerror=window.__pwned=1>',
    '[click](javascript:window.__pwned=1)', '[x](https://a.example/" onmouseover="window.__pwned=1)',
    '[x](https://a.example/\'onmouseover=\'window.__pwned=1)', '`<b onmouseover=window.__pwned=1>x</b>`',
    '**<i onclick=window.__pwned=1>x</i>**', '_[a](https://e.example/_x_)_', '<a href="javascript:alert(1)">x</a>',
    # the former NUL placeholders: model text that forges or loops on them
    '\u00000\u0000', '`\u0000 0 \u0000`', '`\u00000\u0000`', '[\u00000\u0000](https://e.example/)',
    '[a](https://e.example/\u00001\u0000) `" onmouseover="window.__pwned=1 \u00000\u0000`',
    '`x` [a](https://e.example/\u00000\u0000" onmouseover="window.__pwned=1)', '\u0000' * 50,
    '\ue000 \ue000[1]\ue000 `\ue000`', '[1] \ue000\ue000 [2](https://e.example/) \ue000',
    # blow-ups: deep quotes, long runs, unclosed markers
    '>' * 20_000 + ' deep', '> ' * 5_000 + 'deep', '[' * 30_000, '[a](' * 5_000, '`' * 30_000, '*' * 30_000,
    '_ ' * 15_000, ' _a' * 10_000, '**' * 15_000, '#' * 10_000 + ' x', '1. ' * 10_000, '- ' * 10_000,
    '```\n' + '<script>window.__pwned=1</script>\n' * 200, ' ' * 50_000 + 'x', '\n' * 50_000,
    ('[a](https://e.example/' + 'x' * 3_000 + ')') * 10,
]

_PIECES = ["**", "*", "_", "`", "```", "[", "]", "(", ")", "[1]", "[12]", "](https://e.example/a_b)", "https://",
           "javascript:", "> ", "# ", "- ", "1. ", "\n", "\n\n", "  \n", " ", "<", ">", '"', "'", "&", "&amp;",
           "onmouseover=", "onerror=", "window.__pwned=1", "<img src=x ", "<script>", "</script>", "\u0000", "\ue000",
           "0", "1", "\u0000 0 \u0000", "£1,483", "é", "\ud7ff", "\u202e", "word", "GOV.UK", "\t", "\r", "\r\n"]


def _random_inputs(n: int, seed: int = 14) -> list[str]:
    import random

    rng = random.Random(seed)
    return ["".join(rng.choice(_PIECES) for _ in range(rng.randint(1, 60))) for _ in range(n)]


@pytest.mark.timeout(300)
def test_markdown_renderer_fuzz_no_markup_from_model_text_no_hang(browser):
    # A blank page without the server's CSP, so that only the renderer stands between model text and script.
    browser.get("about:blank")
    browser.set_script_timeout(120)  # a hung render fails the test instead of stalling it
    browser.execute_script(MARKDOWN_JS.read_text(encoding="utf-8"))
    inputs = PAYLOADS + _random_inputs(3000)
    report = {"bad": [], "n_bad": 0, "slowest_ms": 0.0, "elements": 0, "pwned": 0}
    for i in range(0, len(inputs), 500):
        got = browser.execute_script(FUZZ_HARNESS, inputs[i:i + 500])
        report["bad"] += [[i + j, why] for j, why in got["bad"]]
        report["n_bad"] += got["n_bad"]
        report["slowest_ms"] = max(report["slowest_ms"], got["slowest_ms"])
        report["elements"] += got["elements"]
    time.sleep(0.3)  # an injected onerror/onload fires asynchronously
    report["pwned"] = browser.execute_script("return window.__pwned || 0")
    print(f"\nrenderer fuzz: {len(inputs)} inputs ({len(PAYLOADS)} adversarial), {report['elements']} elements, "
          f"{report['n_bad']} bad, slowest {report['slowest_ms']:.0f} ms, script ran: {bool(report['pwned'])}")
    assert report["n_bad"] == 0, [(inputs[i][:80], why) for i, why in report["bad"][:5]]
    assert report["pwned"] == 0
    assert report["slowest_ms"] < 2000


def test_markdown_renderer_keeps_its_formatting(browser):
    browser.get("about:blank")
    browser.execute_script(MARKDOWN_JS.read_text(encoding="utf-8"))
    render = lambda md: browser.execute_script("return SafeMarkdown.render(arguments[0])", md)  # noqa: E731
    assert render("**London** and _GOV.UK [site](https://www.gov.uk/a_b)_ [2]") == (
        '<p><strong>London</strong> and <em>GOV.UK <a href="https://www.gov.uk/a_b" target="_blank" '
        'rel="noopener noreferrer">site</a></em> <a class="cite" href="#src-2" data-cite="2">[2]</a></p>')
    assert render("`<b>` and [`x`](https://e.example/)") == (
        '<p><code>&lt;b&gt;</code> and <a href="https://e.example/" target="_blank" rel="noopener noreferrer">'
        '<code>x</code></a></p>')
    assert render("# Title\n- one\n- two\n\n1. first\n> quoted *em*") == (
        "<h3>Title</h3>\n<ul>\n<li>one</li>\n<li>two</li>\n</ul>\n<ol>\n<li>first</li>\n</ol>\n"
        "<blockquote><p>quoted <em>em</em></p></blockquote>")
    assert render("a\u0000b \ue000") == "<p>a\ufffdb \ufffd</p>"
