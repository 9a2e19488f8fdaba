"""Segment pairs waiting for a person, and the answers given to them, on disk.

When a person is the teacher, a labelling round cannot return its labels at once:
the trainer posts the round's pairs here and waits while the labelling page
(:mod:`agents.labelling.server`) hands them out. The folder sits next to the
preference store, in the run folder (``RUN/pending`` beside ``RUN/preferences``)::

    round-000003.npz          frames_a, frames_b: uint8 (N, T, H, W, 3); instructions
    round-000003.json         {"round": 3, "count": N, "meta": {...}, "created": ...}
    round-000003.closed.json  written when the trainer stops waiting: what was answered
    skips.jsonl               "can't tell" answers (and their undos), one JSON line each
    .lock                     flock: one answer at a time, across processes

A label goes straight into the run's :class:`~rewards.preference_store.PreferenceStore`
(source ``human``; meta: the round's meta plus ``pending_round``, ``pending_query``,
``labeller`` and ``time``) and is fsynced before :meth:`PendingQueue.answer` returns,
so a label the page showed as given survives any kill. Which pairs are answered is
read back from the store and the skip log, never kept only in memory: a restarted
trainer or server sees exactly what was given, and a pair is never answered twice,
whichever tab or process asks. An undo withdraws the store's label
(:meth:`~rewards.preference_store.PreferenceStore.withdraw`) or the skip, and the pair
is pending again; once its round is closed a pair can no longer change.

A round is posted atomically (frames first, then the ``.json`` that makes it exist),
so a kill mid-post leaves nothing half-posted: the next post overwrites the orphan.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import fcntl
import json
import os
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import numpy as np

from rewards.durable import atomic_write, cut_torn_tail, fsync_folder
from rewards.preference_store import PreferenceStore

PENDING = "pending"
"""The queue's folder, beside the run's ``preferences/`` store."""
SKIPS_FILE = "skips.jsonl"
SOURCE = "human"
"""The store's ``source`` for labels given on the page."""

Choice = Literal["left", "right", "equal", "skip"]
CHOICES: dict[str, float | None] = {"left": 1.0, "right": 0.0, "equal": 0.5, "skip": None}
"""What the page's keys mean: the left clip is segment a, so "left" labels 1 (a
preferred); "skip" (can't tell) stores no label."""

LABELLER_PATTERN = re.compile(r"[\w .@-]{1,64}")
"""Allowed labeller names: letters, digits, space, ``_.@-``; 1 to 64 characters."""
_ROUND_FILE = re.compile(r"round-(\d{6})\.json")
_NPZ_READ = threading.Lock()
"""One ``.npz`` read at a time in this process: NumPy parses each array's header with
``ast.literal_eval``, whose AST constructor keeps its recursion depth in state shared by
threads: concurrent parses can fail with ``SystemError: AST constructor recursion depth
mismatch`` (CPython 3.11.7 here; see gh-106905). The page's answers arrive on several
server threads at once."""


class UnknownPair(LookupError):
    """No such round, or no such pair in it."""


class Conflict(RuntimeError):
    """The pair cannot take this answer now: answered already, not answered (undo),
    or its round is closed."""


@dataclasses.dataclass(frozen=True)
class RoundProgress:
    """Where one round stands."""

    round: int
    count: int
    labelled: int
    skipped: int
    closed: bool
    meta: dict[str, Any]
    pending: list[int]
    """Queries (pair indices in the round) not answered yet, in order."""

    @property
    def answered(self) -> int:
        return self.labelled + self.skipped


def pending_folder(store: PreferenceStore) -> Path:
    """The queue folder for ``store`` (a sibling of it)."""
    return store.folder.parent / PENDING


def check_labeller(name: str) -> str:
    """Returns ``name`` or raises ``ValueError`` saying what a labeller name may be."""
    if not isinstance(name, str) or not LABELLER_PATTERN.fullmatch(name):
        raise ValueError(f"labeller name {name!r:.80} is not allowed: use 1 to 64 letters, "
                         f"digits, spaces or _ . @ -")
    return name


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


class PendingQueue:
    """The pending pairs of a run, answered into its preference ``store``.

    :param store: the run's preference store; the queue lives beside it
        (:func:`pending_folder`).
    """

    def __init__(self, store: PreferenceStore) -> None:
        self.store = store
        self.folder = pending_folder(store)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._frames: dict[int, tuple[np.ndarray, np.ndarray, list[str]]] = {}

    # -- the trainer's side ----------------------------------------------------------

    def post(self, frames_a: np.ndarray, frames_b: np.ndarray, instructions: Sequence[str],
             meta: dict[str, Any] | None = None) -> int:
        """Makes ``N`` pairs pending as a new round; returns its number.

        :param frames_a: uint8 (N, T, H, W, 3), shown on the left.
        :param frames_b: uint8 (N, T, H, W, 3), shown on the right.
        :param meta: JSON-serialisable facts copied into each label's store meta
            (the loop's round and step; ``budget`` and ``asked_before`` feed the page's
            progress line).
        """
        frames_a, frames_b = np.asarray(frames_a), np.asarray(frames_b)
        if frames_a.dtype != np.uint8 or frames_a.ndim != 5 or frames_a.shape != frames_b.shape:
            raise ValueError(f"frames must be two uint8 (N, T, H, W, 3) arrays of one shape, "
                             f"got {frames_a.dtype} {frames_a.shape} and {frames_b.shape}")
        instructions = [str(text) for text in instructions]
        if len(instructions) != len(frames_a) or len(frames_a) == 0:
            raise ValueError(f"need one instruction per pair and at least one pair; got "
                             f"{len(instructions)} for {len(frames_a)}")
        meta = dict(meta or {})
        json.dumps(meta)  # refuses what the store could not record, before posting
        with self._locked():
            number = max(self.rounds(), default=-1) + 1
            stem = f"round-{number:06d}"
            atomic_write(self.folder / f"{stem}.npz", lambda handle: np.savez(
                handle, frames_a=frames_a, frames_b=frames_b,
                instructions=np.asarray(instructions, dtype=str)))
            header = {"round": number, "count": len(frames_a), "meta": meta,
                      "frame_shape": list(frames_a.shape[1:]), "created": _now()}
            atomic_write(self.folder / f"{stem}.json",
                         lambda handle: handle.write(json.dumps(header, indent=2).encode()))
            fsync_folder(self.folder)
        return number

    def close(self, number: int) -> RoundProgress:
        """Stops a round taking answers (the trainer goes on with what it has)."""
        with self._locked():
            progress = self.progress(number)
            if not progress.closed:
                summary = {"closed": _now(), "labelled": progress.labelled,
                           "skipped": progress.skipped, "unanswered": len(progress.pending)}
                atomic_write(self._path(number, ".closed.json"),
                             lambda handle: handle.write(json.dumps(summary).encode()))
                fsync_folder(self.folder)
        return self.progress(number)

    # -- what is there -----------------------------------------------------------------

    def rounds(self) -> list[int]:
        """Every posted round's number, in order."""
        return sorted(int(match.group(1)) for path in self.folder.iterdir()
                      if (match := _ROUND_FILE.fullmatch(path.name)))

    def open_round(self) -> int | None:
        """The round still taking answers (the newest one, unless closed)."""
        rounds = self.rounds()
        if rounds and not self._path(rounds[-1], ".closed.json").exists():
            return rounds[-1]
        return None

    def header(self, number: int) -> dict[str, Any]:
        """The round's ``.json``: count, meta, frame shape, when it was posted."""
        if number not in self.rounds():
            raise UnknownPair(f"round {number} does not exist; rounds: {self.rounds()}")
        return json.loads(self._path(number, ".json").read_text())

    def pair(self, number: int, query: int) -> tuple[np.ndarray, np.ndarray, str]:
        """Segment a, segment b (uint8 (T, H, W, 3)) and the instruction of a pair."""
        count = self.header(number)["count"]
        if not 0 <= query < count:
            raise UnknownPair(f"round {number} has pairs 0..{count - 1}, not {query}")
        if number not in self._frames:
            with _NPZ_READ, np.load(self._path(number, ".npz"), allow_pickle=False) as data:
                self._frames = {number: (data["frames_a"], data["frames_b"],
                                         [str(text) for text in data["instructions"]])}
        frames_a, frames_b, instructions = self._frames[number]
        return frames_a[query], frames_b[query], instructions[query]

    def progress(self, number: int) -> RoundProgress:
        """How many of the round's pairs are labelled, skipped and still pending."""
        header = self.header(number)
        labelled = self._labels(number)
        skipped = self._skips(number)
        pending = [query for query in range(header["count"])
                   if query not in labelled and query not in skipped]
        return RoundProgress(round=number, count=header["count"], labelled=len(labelled),
                             skipped=len(skipped), meta=header["meta"], pending=pending,
                             closed=self._path(number, ".closed.json").exists())

    def answered_in_closed_rounds(self) -> list[tuple[int, int | None]]:
        """(pairs answered, step) of every closed round: what the online loop's budget
        and schedule count (unanswered pairs were never judged, so they cost nothing)."""
        result = []
        for number in self.rounds():
            closed = self._path(number, ".closed.json")
            if closed.exists():
                summary = json.loads(closed.read_text())
                step = self.header(number)["meta"].get("step")
                result.append((int(summary["labelled"]) + int(summary["skipped"]),
                               None if step is None else int(step)))
        return result

    # -- the page's side ---------------------------------------------------------------

    def answer(self, number: int, query: int, choice: str, labeller: str) -> RoundProgress:
        """Records ``choice`` for one pending pair, durably before returning.

        :raises UnknownPair: no such round or pair.
        :raises Conflict: the pair is answered already, or its round is closed.
        :raises ValueError: ``choice`` is not one of :data:`CHOICES`, or a bad labeller.
        """
        if choice not in CHOICES:
            raise ValueError(f"label {choice!r:.40} is not allowed; choose one of "
                             f"{list(CHOICES)}")
        check_labeller(labeller)
        frames_a, frames_b, instruction = self.pair(number, query)
        with self._locked():
            progress = self.progress(number)
            if progress.closed:
                raise Conflict(f"round {number} is closed: the trainer stopped waiting for it")
            if query not in progress.pending:
                raise Conflict(f"pair {query} of round {number} is answered already")
            facts = {"pending_round": number, "pending_query": query, "labeller": labeller,
                     "time": _now()}
            if CHOICES[choice] is None:
                self._append_skip({"round": number, "query": query, "labeller": labeller,
                                   "time": facts["time"]})
            else:
                self.store.append(frames_a[None], frames_b[None], [CHOICES[choice]],
                                  source=SOURCE, instructions=[instruction],
                                  meta={**progress.meta, **facts})
        return self.progress(number)

    def undo(self, number: int, query: int, labeller: str) -> RoundProgress:
        """Takes back the answer to a pair of an open round: it is pending again.

        :raises Conflict: the pair is not answered, or its round is closed.
        """
        check_labeller(labeller)
        self.pair(number, query)  # UnknownPair for a pair that does not exist
        with self._locked():
            if self._path(number, ".closed.json").exists():
                raise Conflict(f"round {number} is closed: its answers are final")
            facts = {"labeller": labeller, "time": _now()}
            labelled = self._labels(number)
            if query in labelled:
                self.store.withdraw(labelled[query], meta={"undo": True, **facts})
            elif query in self._skips(number):
                self._append_skip({"round": number, "query": query, "undo": True, **facts})
            else:
                raise Conflict(f"pair {query} of round {number} has no answer to undo")
        return self.progress(number)

    # -- internals -------------------------------------------------------------------

    def _path(self, number: int, suffix: str) -> Path:
        return self.folder / f"round-{number:06d}{suffix}"

    @contextmanager
    def _locked(self) -> Iterator[None]:
        # flock on a fresh open file: excludes other threads and other processes alike.
        with open(self.folder / ".lock", "a+b") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            yield

    def _labels(self, number: int) -> dict[int, int]:
        """query -> store pair number, for the round's live labels."""
        return {record["meta"]["pending_query"]: record["pair"]
                for record in self.store.records()
                if record["source"] == SOURCE
                and record.get("meta", {}).get("pending_round") == number}

    def _skips(self, number: int) -> set[int]:
        path = self.folder / SKIPS_FILE
        skipped: set[int] = set()
        if not path.exists():
            return skipped
        data = path.read_bytes()
        for line in data[:data.rfind(b"\n") + 1].splitlines():  # a torn tail is no answer
            entry = json.loads(line)
            if entry["round"] == number:
                (skipped.discard if entry.get("undo") else skipped.add)(int(entry["query"]))
        return skipped

    def _append_skip(self, entry: dict[str, Any]) -> None:
        with open(self.folder / SKIPS_FILE, "a+b") as log:
            cut_torn_tail(log)
            log.seek(0, os.SEEK_END)
            log.write((json.dumps(entry, sort_keys=True) + "\n").encode())
            log.flush()
            os.fsync(log.fileno())
