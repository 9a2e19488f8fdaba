"""Serve the labelling page for a run's pending preference queries.

``vmalign label RUN`` (a training run, or a ``vmalign reward-train`` output folder,
whose teacher is ``human``) serves the page on http://127.0.0.1:8765 and prints its
URL with a fresh random token; open it and label with the keyboard (``?`` shows the
keys). Each label is written to ``RUN/preferences`` before the page shows the next
pair; a trainer waiting on ``RUN/pending`` goes on when its round is answered. The
trainer serves the same page itself unless its ``teacher_kwargs`` say
``serve: false``; this command is for that case, or for labelling from a second
server (another port) at the same time. Stop it with Ctrl-C.

To label on a remote machine, keep the default host and tunnel the port:
``ssh -L 8765:127.0.0.1:8765 HOST`` (docs/labelling.md). ``--host 0.0.0.0`` exposes
the page to the network and is refused unless ``--allow-remote`` is given too.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from agents.labelling.human import check_settings
from agents.labelling.pending import PENDING, PendingQueue, check_labeller
from agents.sb3.preference_loop import PREFERENCES
from rewards.preference_store import PreferenceStore

TOKEN_VARIABLE = "VMALIGN_LABEL_TOKEN"
"""Sets the token instead of a random one (as JUPYTER_TOKEN does), e.g. for scripts."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="run folder holding preferences/ and pending/")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8765, help="port (0: any free one)")
    parser.add_argument("--allow-remote", action="store_true",
                        help="allow a --host other than loopback (prefer an SSH tunnel)")
    parser.add_argument("--labeller", help="name stored with each label when the page "
                                           "gives none (default: your login name)")


def run(args: argparse.Namespace) -> int:
    from agents.labelling.server import LabelServer  # the web stack: after argument checks

    folder = Path(args.run)
    if not (folder / PENDING).is_dir():
        raise FileNotFoundError(f"{folder} has no {PENDING}/ folder: give the folder of a "
                                f"run (or reward-train output) whose teacher is human; its "
                                f"pending pairs appear there once the trainer asks a round")
    check_settings({"host": args.host, "port": args.port, "allow_remote": args.allow_remote})
    if args.labeller is not None:
        check_labeller(args.labeller)
    token = os.environ.get(TOKEN_VARIABLE) or None
    queue = PendingQueue(PreferenceStore(folder / PREFERENCES))
    server = LabelServer(queue, args.host, args.port, args.allow_remote, token=token,
                         labeller=args.labeller).start()
    if args.allow_remote:
        print(f"vmalign label: WARNING: listening on {args.host}: anyone who can reach "
              f"this port and has the token can label", flush=True)
    open_round = queue.open_round()
    print(f"vmalign label: {'round ' + str(open_round) if open_round is not None else 'no round'}"
          f" open in {queue.folder}", flush=True)
    print(f"vmalign label: open {server.url}", flush=True)
    try:
        while server.running:
            time.sleep(0.5)
    except KeyboardInterrupt:
        server.stop()
    return 0
