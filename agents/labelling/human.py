"""A person as the teacher: a round's pairs go to the labelling page and the trainer waits.

``teacher: human`` (``preference.teacher: human`` in a training config,
``vmalign reward-train --teacher human``) makes :class:`HumanTeacher`. Unlike the
simulated teachers it does not return labels: :meth:`HumanTeacher.collect` posts the
round's pairs to the run's :class:`~agents.labelling.pending.PendingQueue`, serves the
labelling page (printing its URL once), and waits, showing a progress bar, until
every pair is answered or ``wait_seconds`` have passed; then it closes the round and
the caller refits on the store, where each label already is.

A trainer killed while it waits finds the round still open when it restarts and
waits for the same pairs (:meth:`HumanTeacher.collect` does not draw new ones then):
no pending pair is lost, none is asked twice.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from agents.labelling.pending import PendingQueue, RoundProgress, check_labeller
from rewards.preference_store import PreferenceStore

NAME = "human"


class HumanTeacherSettings(BaseModel):
    """``teacher_kwargs`` of ``teacher: human``."""

    model_config = ConfigDict(extra="forbid")
    wait_seconds: float | None = Field(default=None, gt=0)
    """None: wait until every pair of a round is answered; N: go on after N seconds
    with what was answered (the unanswered pairs are dropped and cost no budget)."""
    host: str = "127.0.0.1"
    port: int = Field(default=8765, ge=0, le=65535)
    """0 picks a free port."""
    allow_remote: bool = False
    """Required to bind anything but loopback (prefer an SSH tunnel: docs/labelling.md)."""
    labeller: str | None = None
    """The name labels are stored under when the page gives none (default: login name)."""
    serve: bool = True
    """False: only post and wait; someone runs ``vmalign label RUN`` to serve the page."""

    @model_validator(mode="after")
    def _check(self) -> HumanTeacherSettings:
        from agents.labelling.server import check_host  # the web stack, only when used

        check_host(self.host, self.allow_remote)
        if self.labeller is not None:
            check_labeller(self.labeller)
        return self


def check_settings(params: dict[str, Any]) -> HumanTeacherSettings:
    """``params`` as settings, or ``ValueError`` naming each bad key and the allowed ones."""
    try:
        return HumanTeacherSettings(**params)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in error.errors())
        raise ValueError(f"teacher human: {problems} (keys allowed: "
                         f"{sorted(HumanTeacherSettings.model_fields)})") from None


@dataclasses.dataclass
class Collected:
    """What one human round asked and kept."""

    asked: int
    """Pairs answered (labelled or skipped): what the round costs of the budget."""
    kept: int
    """Labels stored (skips store none)."""
    resumed: bool
    """The round was posted before a restart, not now."""


class HumanTeacher:
    """Posts rounds to the labelling page and waits for a person's answers."""

    name = NAME

    def __init__(self, settings: HumanTeacherSettings | None = None, log: Any = print,
                 poll_seconds: float = 0.25) -> None:
        self.settings = settings or HumanTeacherSettings()
        self.log = log
        self.poll_seconds = poll_seconds
        self.server: Any = None

    def collect(self, draw: Callable[[], Any], store: PreferenceStore,
                meta: dict[str, Any]) -> Collected:
        """One round: the open one left by a killed run, else ``draw()``'s pairs (with
        ``frames_a``, ``frames_b``, ``instructions``) posted with ``meta``."""
        queue = PendingQueue(store)
        number = queue.open_round()
        resumed = number is not None
        if number is None:
            queries = draw()
            number = queue.post(queries.frames_a, queries.frames_b, queries.instructions, meta)
        self._serve(queue)
        progress = self._wait(queue, number)
        return Collected(asked=progress.answered, kept=progress.labelled, resumed=resumed)

    def close(self) -> None:
        """Stops the page's server, if this teacher started one."""
        if self.server is not None:
            self.server.stop()
            self.server = None

    def _serve(self, queue: PendingQueue) -> None:
        if self.server is not None or not self.settings.serve:
            if not self.settings.serve:
                self.log(f"vmalign: pairs pending in {queue.folder}; serve them with "
                         f"`vmalign label {queue.folder.parent}`")
            return
        from agents.labelling.server import LOOPBACK, LabelServer  # the web stack, when used

        settings = self.settings
        self.server = LabelServer(queue, settings.host, settings.port, settings.allow_remote,
                                  labeller=settings.labeller).start()
        if settings.host not in LOOPBACK:
            self.log(f"vmalign: WARNING: the labelling page listens on {settings.host}: "
                     f"anyone who can reach it and has the token can label")
        self.log(f"vmalign: label the pending pairs at {self.server.url}")

    def _wait(self, queue: PendingQueue, number: int) -> RoundProgress:
        """Until every pair is answered or ``wait_seconds`` pass; then closes the round."""
        from tqdm import tqdm

        limit = self.settings.wait_seconds
        deadline = None if limit is None else time.monotonic() + limit
        progress = queue.progress(number)
        with tqdm(total=progress.count, initial=progress.answered, unit="pair",
                  desc=f"round {number}: waiting for labels", leave=False,
                  mininterval=1.0) as bar:
            while progress.pending and (deadline is None or time.monotonic() < deadline):
                time.sleep(self.poll_seconds)
                progress = queue.progress(number)
                if progress.answered != bar.n:  # an undo moves it back
                    bar.update(progress.answered - bar.n)
        progress = queue.close(number)
        if progress.pending:
            self.log(f"vmalign: round {number} closed after {limit:g} s with "
                     f"{progress.answered} of {progress.count} pairs answered")
        return progress
