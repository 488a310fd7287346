"""Shared fixtures. Tests never reach a hub: HF_HUB_OFFLINE is forced before anything imports transformers."""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SAMPLE = SHARED / "data" / "studyabroadgpt-sample" / "conversations.jsonl"
BROKEN = Path(__file__).parent / "data" / "broken"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
SAGPT = [sys.executable, "-m", "studyabroadgpt.cli"]  # the `sagpt` command of the tree under test


def free_port() -> int:
    """A free TCP port on loopback for a test server (the OS picks it; the socket closes before the server binds)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running(app) -> Iterator[str]:
    """Serve the ASGI ``app`` under uvicorn in a thread on a free loopback port, so tests talk HTTP to it exactly
    like a client would (openai client, httpx, a browser); yields the base URL and stops the server afterwards."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("test server did not start")
        time.sleep(0.02)
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(15)


@contextlib.contextmanager
def sagpt_serve(log: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 180) -> Iterator[str]:
    """Run ``sagpt serve --port <free port> ARGS`` as a real process and yield its base URL once ``/health``
    answers 200; stop it afterwards (SIGTERM to its process group: it runs in its own session, so nothing it
    started outlives the test). Its stdout and stderr go to ``log``, which a failed start shows; ``timeout``
    bounds the start-up (loading even the tiny model takes tens of seconds on a loaded 2-core machine)."""
    import httpx

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with log.open("w") as out:
        proc = subprocess.Popen([*SAGPT, "serve", "--port", str(port), *args], stdout=out,
                                stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            deadline = time.monotonic() + timeout
            while True:
                assert proc.poll() is None, log.read_text()
                try:
                    if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, f"sagpt serve did not come up in {timeout:.0f} s"
                time.sleep(0.5)
            yield base
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)


@pytest.fixture(scope="session")
def sample_path() -> Path:
    if not SAMPLE.exists():
        pytest.skip(f"shared sample not found at {SAMPLE}")
    return SAMPLE


@pytest.fixture(scope="session")
def broken_dir() -> Path:
    return BROKEN


@pytest.fixture(scope="session")
def tiny_model():
    """The tiny random Llama with SmolLM2's tokenizer (model, tokenizer)."""
    from studyabroadgpt import models

    return models.load(models.TINY_MODEL)


@pytest.fixture(scope="session")
def smollm2():
    """The real embedded SmolLM2-135M-Instruct (integration tests only)."""
    from studyabroadgpt import models

    return models.load(models.DEFAULT_MODEL)


@pytest.fixture()
def chromium(tmp_path):
    """``chromium(width, height)`` → a headless Chromium WebDriver (Debian's chromium + chromium-driver, driven
    by Selenium) with a throw-away profile; every browser opened is quit after the test. Skips the test when the
    browser, the driver or selenium is missing. One place for the flags both browser tests need: no network of
    its own (no sync, updates or QUIC) and /tmp instead of the small /dev/shm of a CI container."""
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver); "
                    ".ci/run installs them")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    opened = []

    def open_browser(width: int, height: int):
        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        profile = tmp_path / f"chromium-profile-{len(opened)}"
        for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--disable-dev-shm-usage", f"--window-size={width},{height}", f"--user-data-dir={profile}"):
            opts.add_argument(flag)
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
        driver.set_page_load_timeout(30)
        opened.append(driver)
        return driver

    yield open_browser
    for driver in opened:
        driver.quit()
