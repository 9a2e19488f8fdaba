"""The labelling page in a real browser: Debian's headless Chromium, driven by Playwright
(no browser download), labels pairs with the keyboard and undoes one; the labels on
disk are checked. ``./run.sh test`` installs chromium with apt-get when it is missing."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from agents.labelling.pending import PendingQueue
from agents.labelling.server import LabelServer
from rewards.preference_store import PreferenceStore

CHROMIUM = os.environ.get("VMALIGN_CHROMIUM") or shutil.which("chromium") or shutil.which(
    "chromium-browser")


def coloured_pairs(count: int, steps: int = 6, size: int = 32):
    """Segment a: a red square moving right; segment b: a blue one moving down."""
    frames_a = np.full((count, steps, size, size, 3), 40, np.uint8)
    frames_b = frames_a.copy()
    for t in range(steps):
        frames_a[:, t, 12:20, 4 * t:4 * t + 8] = (220, 40, 40)
        frames_b[:, t, 4 * t:4 * t + 8, 12:20] = (40, 40, 220)
    return frames_a, frames_b


@pytest.fixture
def browser():
    if CHROMIUM is None:
        pytest.fail("no chromium on PATH: `apt-get install chromium` (./run.sh test does it "
                    "as root), or set VMALIGN_CHROMIUM to a Chromium binary")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # As root (CI containers) Chromium's sandbox cannot start.
        args = ["--no-sandbox"] if os.geteuid() == 0 else []
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=args)
        yield browser
        browser.close()


def test_a_person_labels_with_the_keyboard_and_undoes(tmp_path, browser):
    store = PreferenceStore(tmp_path / "preferences")
    queue = PendingQueue(store)
    frames_a, frames_b = coloured_pairs(5)
    queue.post(frames_a, frames_b, ["push the red cube onto the pad"] * 5,
               meta={"budget": 500, "asked_before": 40})
    server = LabelServer(queue, port=0).start()
    try:
        page = browser.new_page()
        page.goto(server.url)

        def showing(query: int) -> None:
            page.wait_for_selector(f"#pair[data-query='{query}']:not([hidden])", timeout=10_000)

        showing(0)
        assert page.inner_text("#instruction") == "push the red cube onto the pad"
        page.fill("#labeller", "ada")
        page.press("#labeller", "Tab")  # saves the name; keys then go to the page
        page.keyboard.press("?")
        assert page.is_visible("#help")
        page.screenshot(path=str(tmp_path / "help.png"))
        page.keyboard.press("Escape")
        assert not page.is_visible("#help")

        page.keyboard.press("ArrowLeft")   # pair 0: left (a) better
        showing(1)
        page.keyboard.press("ArrowRight")  # pair 1: right (b) better
        showing(2)
        page.keyboard.press("=")           # pair 2: equal...
        showing(3)
        page.keyboard.press("u")           # ...undone: pair 2 again
        showing(2)
        assert "pair 2 of round 0 is back" in page.inner_text("#message")
        page.keyboard.press("s")           # pair 2: can't tell
        showing(3)
        page.keyboard.press("2")           # pair 3: right
        showing(4)
        # Selectors, not wait_for_function: the page's CSP forbids evaluating strings.
        page.wait_for_selector("#progress:has-text('4 of 5 answered')")
        assert "44 of 500" in page.inner_text("#progress")
        page.screenshot(path=str(tmp_path / "labelling-page.png"))
        if os.environ.get("VMALIGN_SCREENSHOT"):
            page.screenshot(path=os.environ["VMALIGN_SCREENSHOT"])
    finally:
        server.stop()

    records = PreferenceStore(tmp_path / "preferences").records()  # what is on disk
    assert [(r["meta"]["pending_query"], r["label"]) for r in records] == [
        (0, 1.0), (1, 0.0), (3, 0.0)]
    assert {r["meta"]["labeller"] for r in records} == {"ada"}
    progress = queue.progress(0)
    assert (progress.labelled, progress.skipped, progress.pending) == (3, 1, [4])
    assert (tmp_path / "labelling-page.png").stat().st_size > 10_000
