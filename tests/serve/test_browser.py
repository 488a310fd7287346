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

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER),
                                reason="needs Debian's chromium and chromium-driver (apt-get install chromium "
                                       "chromium-driver); .ci/run installs them")

REPLY = ("For a course in **London** you must show £1,900 per month for up to 9 months, and the money must "
         "have been held for 28 consecutive days.\n\n- keep your bank statements\n- apply early")


@pytest.fixture()
def browser(tmp_path):
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1280,900", f"--user-data-dir={tmp_path / 'profile'}"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


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
        assert note.is_displayed() and "Corrected" in note.text and "1,900" in note.text
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
