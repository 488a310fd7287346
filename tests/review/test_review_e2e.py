"""The whole review loop, for real: `serve` with logging → a student asks 20 questions (one thumbs-down) →
an adviser reviews in headless Chromium (approves, corrects 3 answers, flags a fact, proposes a new one) →
`review export` writes a phase-2 file that `data validate` accepts and the CPU recipe trains on →
`review kb-proposals` writes a patch that `kb validate` passes → `review stats` reports it all."""
from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import pytest

from studyabroadgpt.review.store import LogStore
from studyabroadgpt.serve.app import create_app
from studyabroadgpt.serve.generation import ScriptedGenerator
from studyabroadgpt.serve.settings import ServeSettings

from ..serve.conftest import running

ROOT = Path(__file__).resolve().parents[2]
ADVISER_KEY, API_KEY = "adviser-secret", "student-key"

QUESTIONS = [
    "How much money do I need to show for a UK student visa in London?",
    "Can I work part time on a student visa in Canada?",
    "What IELTS score do I need for a UK student visa?",
    "Do I need health insurance as a student in Germany?",
    "How long can I stay in Australia after my degree?",
    "What is the blocked account amount for Germany?",
    "Can my wife come with me on a UK master's student visa?",
    "How many hours can I work in Australia as a student?",
    "What is the Graduate Route in the UK?",
    "Do I need to pay the immigration health surcharge?",
    "My name is Sara Ali, how do I get an F-1 visa? My email is sara.ali@example.com",
    "What is the SEVIS fee for the US?",
    "Can I work off campus in the US on an F-1 visa?",
    "What is Stamp 2 in Ireland?",
    "How much are living costs for students in the Netherlands?",
    "Do I need a visa to study in New Zealand for one year?",
    "How much are tuition fees in Germany?",
    "What English test does Canada accept for a study permit?",
    "How long is the post-graduation work permit in Canada?",
    "<img src=x onerror=\"window.__pwned=1\"> what documents do I need?",
]
# The scripted model gives one fixed answer with a wrong figure; the gate corrects it on the funds question.
REPLY = "You need to show £1,900 per month for up to 9 months [1]. Apply early and keep your bank statements."


@pytest.fixture()
def browser(chromium):
    return chromium(1400, 1000)


class _Result:
    def __init__(self, r):
        self.returncode, self.stdout, self.stderr = r.exit_code, " ".join(r.stdout.split()), str(r.exception or "")


def _cli(*args: str, cwd: Path) -> _Result:
    """The real CLI, in-process (a subprocess per command cost ~10 s of imports each on a busy 2-core box)."""
    from typer.testing import CliRunner

    from studyabroadgpt.cli import app

    old = os.getcwd()
    os.chdir(cwd)
    try:
        return _Result(CliRunner().invoke(app, list(args)))
    finally:
        os.chdir(old)


def test_serve_log_review_export_train_propose(browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    from studyabroadgpt.serve.answer import Answerer

    db = tmp_path / "conversations.db"
    settings = ServeSettings(api_key=API_KEY, log_db=f"sqlite:///{db}", adviser_key=ADVISER_KEY,
                             adapter_id="runs/x/adapter")
    app = create_app(ScriptedGenerator(REPLY), Answerer.from_kb(), settings)
    with running(app) as base, httpx.Client(base_url=base, timeout=60) as http:
        auth = {"Authorization": f"Bearer {API_KEY}"}
        ids = []
        for i, q in enumerate(QUESTIONS):
            r = http.post("/v1/chat/completions", headers={**auth, "X-Conversation-ID": f"conv-{i}"},
                          json={"model": "x", "messages": [{"role": "user", "content": q}],
                                "stream": i % 2 == 1})
            assert r.status_code == 200, r.text
            if i % 2 == 0:
                ids.append(r.json()["id"])
            else:  # streamed: the id is on every chunk
                first = next(line for line in r.text.splitlines() if line.startswith("data: {"))
                ids.append(json.loads(first[6:])["id"])
        # The student's thumbs-down (through the chat page's endpoint, behind the API key).
        assert http.post("/v1/feedback", json={"id": ids[3], "rating": -1, "comment": "not what my uni said"},
                         ).status_code == 401
        assert http.post("/v1/feedback", headers=auth,
                         json={"id": ids[3], "rating": -1, "comment": "not what my uni said"}).status_code == 200
        # The review API is behind the adviser key, and the API key does not open it.
        assert http.get("/review/api/queue").status_code == 401
        assert http.get("/review/api/queue", headers={"X-Adviser-Key": API_KEY}).status_code == 401
        queue = http.get("/review/api/queue", headers={"X-Adviser-Key": ADVISER_KEY}).json()["items"]
        assert len(queue) == 20
        assert queue[0]["request_id"] == ids[3], "the thumbs-down answer must head the queue"
        logged = {t["request_id"]: t for t in queue}
        assert "[name]" in logged[ids[10]]["question"] and "[email]" in logged[ids[10]]["question"]
        assert "Sara" not in json.dumps(queue) and "sara.ali@example.com" not in db.read_bytes().decode("latin-1")
        funds = logged[ids[0]]
        assert funds["gate_changed"] and "1,483" in funds["answer"] and funds["raw_text"] == REPLY

        wait = WebDriverWait(browser, 90)  # generous: CI boxes are slow and shared
        # ---- a student on the chat page gives a thumbs-down with a comment
        browser.get(base + "/")
        wait.until(lambda d: d.find_element(By.ID, "model").text == "scripted")
        browser.find_element(By.ID, "apikey").send_keys(API_KEY)
        browser.find_element(By.ID, "question").send_keys("Can I bring my parents on a student visa to Canada?")
        browser.find_element(By.ID, "send").click()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".msg.assistant[data-done='1'] .thumb.down"))
        browser.find_element(By.CSS_SELECTOR, ".thumb.down").click()
        browser.find_element(By.CSS_SELECTOR, ".feedback-comment").send_keys("my parents cannot come, I checked")
        browser.find_element(By.CSS_SELECTOR, ".feedback-send").click()
        wait.until(lambda d: d.find_element(By.CSS_SELECTOR, ".feedback-status").text.startswith("Thanks"))
        page_turn = http.get("/review/api/queue", headers={"X-Adviser-Key": ADVISER_KEY}).json()["items"][0]
        assert page_turn["question"].startswith("Can I bring my parents") and page_turn["feedback"] == -1
        assert page_turn["feedback_comment"] == "my parents cannot come, I checked"
        assert len(page_turn["conversation_id"]) >= 16  # the page's own conversation id

        # ---- the adviser, in the browser
        browser.get(base + "/review")
        browser.find_element(By.ID, "reviewer").send_keys("AB")
        browser.find_element(By.ID, "key").send_keys(ADVISER_KEY)
        browser.find_element(By.ID, "connect").click()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#queue li")) == 21)
        items = browser.find_elements(By.CSS_SELECTOR, "#queue li")
        assert "thumbs-down" in items[0].text and "thumbs-down" in items[1].text
        # The injected markup in question 20 is shown as text and never became an element.
        assert any("<img src=x" in li.text for li in items)
        assert browser.execute_script("return window.__pwned === undefined && !document.querySelector('#queue img')")

        from selenium.common.exceptions import StaleElementReferenceException

        def open_item(request_id: str) -> None:
            tid = logged[request_id]["id"]

            def click(d) -> bool:  # the queue re-renders after each save: retry on a replaced element
                try:
                    d.find_element(By.CSS_SELECTOR, f"#queue li[data-id='{tid}']").click()
                    return True
                except StaleElementReferenceException:
                    return False

            wait.until(click)
            try:
                wait.until(lambda d: d.find_element(By.ID, "meta").text.startswith(f"answer {tid} "))
            except Exception:
                raise AssertionError(f"answer {tid} did not open: status={browser.find_element(By.ID, 'status').text!r} "
                                     f"meta={browser.find_element(By.ID, 'meta').text!r}") from None

        def saved(action: str, request_id: str) -> None:
            # Wait for THIS save (the previous one left "Saved: edit on answer N" in the status line).
            want = f"Saved: {action} on answer {logged[request_id]['id']}"
            wait.until(lambda d: d.find_element(By.ID, "status").text == want)

        corrections = {ids[1]: "Yes: during term you may work off campus part time; check IRCC's page first [1].",
                       ids[6]: "No: on a taught master's course of under 12 months your partner cannot join you "
                               "as a dependant; check GOV.UK [1].",
                       ids[7]: "Australia limits student work to 48 hours per fortnight during term [1]."}
        for rid, text in corrections.items():
            open_item(rid)
            box = browser.find_element(By.ID, "corrected")
            box.clear()
            box.send_keys(text)
            browser.find_element(By.ID, "edit-note").send_keys("the model guessed")
            browser.find_element(By.ID, "save-edit").click()
            saved("edit", rid)
        for rid in (ids[2], ids[8], ids[11]):
            open_item(rid)
            browser.find_element(By.ID, "approve").click()
            saved("approve", rid)
        # A fact flagged as outdated, and a new fact proposed.
        open_item(ids[0])
        fact_id = Select(browser.find_element(By.ID, "fact")).first_selected_option.get_attribute("value")
        browser.find_element(By.CSS_SELECTOR, "input[name=fact-kind][value=fact_outdated]").click()
        browser.find_element(By.ID, "fact-note").send_keys("GOV.UK raised the amount")
        browser.find_element(By.ID, "flag-fact").click()
        saved("fact_outdated", ids[0])
        open_item(ids[13])
        browser.find_element(By.ID, "p-destination").send_keys("IE")
        browser.find_element(By.ID, "p-topic").send_keys("work_rights")
        browser.find_element(By.ID, "p-statement").send_keys(
            "Students with Stamp 2 permission may work up to 20 hours a week during term and 40 hours a week "
            "during the holiday periods set by the Department of Justice.")
        browser.find_element(By.ID, "p-url").send_keys("https://www.irishimmigration.ie/my-situation-has-changed-since-i-arrived-in-ireland/working-in-ireland-while-studying/")
        browser.find_element(By.ID, "p-title").send_keys("Irish Immigration Service: working while studying")
        browser.find_element(By.ID, "propose").click()
        saved("propose", ids[13])
        # Stats in the page, with the plot.
        browser.find_element(By.ID, "show-stats").click()
        try:
            wait.until(lambda d: d.find_element(By.ID, "stats-plot").get_attribute("naturalWidth") not in (None, "0"))
        except Exception:
            raise AssertionError("the stats plot did not load: "
                                 f"status={browser.find_element(By.ID, 'status').text!r}") from None
        page_stats = browser.find_element(By.ID, "stats-list").text
        assert "answers logged\n21" in page_stats and "answers reviewed\n8" in page_stats and "corrected or fact flagged\n4" in page_stats, page_stats
        shots = Path(os.environ.get("SAGPT_SCREENSHOT_DIR", tmp_path))
        shots.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(shots / "review_page.png"))

    # ---- a restart: every reviewer action is still there
    store = LogStore(f"sqlite:///{db}")
    assert sorted(t.status for t in store.queue(status=None, limit=100)).count("corrected") == 3
    store.close()

    # ---- feedback into the system
    phase2 = tmp_path / "phase2.jsonl"
    res = _cli("review", "export", "--db", str(db), "--out", str(phase2), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    rows = [json.loads(x) for x in phase2.read_text().splitlines()]
    assert len(rows) == 6
    corrected = [r for r in rows if r["metadata"]["review_action"] == "corrected"]
    assert sorted(r["conversations"][-1]["value"] for r in corrected) == sorted(corrections.values())
    assert all(r["metadata"]["reviewer"] == "AB" and r["metadata"]["kb_version"] for r in rows)
    assert rows[0]["conversations"][0]["from"] == "system" and "[1]" in rows[0]["conversations"][0]["value"]
    res = _cli("data", "validate", str(phase2), "--strict", cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    res = _cli("train", "--config", str(ROOT / "configs" / "smollm2-135m-cpu.yaml"), "model=tiny-random",
               f"dataset={phase2}", "max_steps=2", f"output_dir={tmp_path / 'runs'}", "name=phase2",
               "seq_len=512", cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert (tmp_path / "runs" / "phase2" / "adapter" / "adapter_config.json").exists()

    patch = tmp_path / "kb-patch.yaml"
    res = _cli("review", "kb-proposals", "--db", str(db), "--out", str(patch), cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    text = patch.read_text()
    assert f"OUTDATED: {fact_id}" in text and "GOV.UK raised the amount" in text and "NEW fact proposed by AB" in text
    res = _cli("kb", "validate", str(patch), cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "2 valid facts" in res.stdout

    res = _cli("review", "stats", "--db", str(db), "--out", str(tmp_path / "stats"), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    stats = json.loads((tmp_path / "stats" / "stats.json").read_text())
    assert stats["answers_logged"] == 21 and stats["answers_reviewed"] == 8 and stats["corrected"] == 4
    assert stats["thumbs_down"] == 2 and (tmp_path / "stats" / "stats.png").stat().st_size > 5000
    print(res.stdout)
