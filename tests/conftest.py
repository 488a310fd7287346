"""Shared fixtures. Tests never reach a hub: HF_HUB_OFFLINE is forced before anything imports transformers."""
from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

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


def free_port() -> int:
    """A free TCP port on loopback for a test server (the OS picks it; the socket closes before the server binds)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
