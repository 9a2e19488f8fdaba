"""The end-to-end check of human labelling (issue 26's "done when"), with headless
Chromium standing in for the person: a real ``vmalign train --config
reach_state_preference preference.teacher=human`` run; 30 pairs of round 0 and 8 of
round 1 answered on the page with the keyboard; the trainer SIGKILLed while it waits;
``vmalign train --resume``; the other 12 pairs of round 1 answered on the restarted
server's page; the run finishes. The keys follow a fixed cycle (left, right, left,
equal, right, skip): this checks the plumbing, not the quality of the labels.

    ./run.sh python docs/scripts/label_in_browser.py outputs/label-check

Writes RUN/, RUN-trainer.log and RUN-page.png (the page after five answers), and
prints the run's train_summary.json.
"""

import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

RUN = Path(sys.argv[1])
TRAIN = ["./run.sh", "vmalign", "train", "--config", "reach_state_preference",
         "preference.teacher=human", "preference.teacher_kwargs={port: 0}",
         "preference.total_queries=50", "preference.initial_queries=30",
         "preference.queries_per_round=20", "hyperparams.n_timesteps=24576",
         "checkpoint_every=4096", "--out", str(RUN)]
RESUME = ["./run.sh", "vmalign", "train", "--resume", str(RUN)]
KEYS = ["ArrowLeft", "ArrowRight", "ArrowLeft", "=", "ArrowRight", "s"]
LOG = open(f"{RUN}-trainer.log", "a")


def start(command: list[str]) -> tuple[subprocess.Popen, str]:
    """Starts the trainer; returns it and the page URL it prints."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=LOG, text=True)
    for line in process.stdout:
        LOG.write(line)
        match = re.search(r"(http://127\.0\.0\.1:\d+/\?token=\S+)", line)
        if match:
            return process, match.group(1)
    raise RuntimeError(f"the trainer exited without serving the page; see {LOG.name}")


def label(page, count: int, first: int) -> int:
    """Answers ``count`` pairs as they appear; key ``first + i`` of the cycle."""
    for i in range(count):
        page.wait_for_selector("#pair:not([hidden])", timeout=600_000)
        query = page.get_attribute("#pair", "data-query")
        page.keyboard.press(KEYS[(first + i) % len(KEYS)])
        # The next pair, or the waiting notice (CSP forbids wait_for_function's eval).
        page.wait_for_selector(f"#pair:not([data-query='{query}']), #pair[hidden]",
                               state="attached", timeout=600_000)
        if first + i == 4:
            page.screenshot(path=f"{RUN}-page.png")
    return count


with sync_playwright() as playwright:
    browser = playwright.chromium.launch(executable_path=shutil.which("chromium"),
                                         args=["--no-sandbox"])
    started = time.time()
    trainer, url = start(TRAIN)
    page = browser.new_page(viewport={"width": 1100, "height": 640})
    page.goto(url)
    given = label(page, 30, 0)   # round 0, all of it
    given += label(page, 8, given)  # 8 of round 1's 20
    time.sleep(1.0)
    trainer.send_signal(signal.SIGKILL)  # ./run.sh execs: this is the trainer itself
    trainer.wait()
    print(f"trainer killed while waiting, after {given} answers, {time.time() - started:.0f} s")
    trainer, url = start(RESUME)
    page.goto(url)  # the restarted server has a new token
    given += label(page, 12, given)
    for line in trainer.stdout:
        LOG.write(line)
    trainer.wait()
    print(f"trainer exit {trainer.returncode}; {given} answers; {time.time() - started:.0f} s")
    browser.close()
print(json.dumps(json.loads((RUN / "train_summary.json").read_text()), indent=1))
