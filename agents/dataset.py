"""Episode datasets on disk with LeRobot-style keys, written durably, read lazily.

A dataset is a folder::

    meta/info.json        format, version, features (dtype and shape of every key),
                          env id and kwargs, fps, chunk size
    meta/tasks.jsonl      {"task_index": i, "task": "push the red cube onto ..."} per task
    meta/episodes.jsonl   {"episode_index", "length", "task_index", "success", "seed",
                           "file"} per finished episode: the commit record
    data/chunk-000/episode_000000.npz   one episode's arrays

Each episode file holds, per step ``t`` (the observation the action was chosen on):
``observation.image`` uint8 (T, H, W, 3), ``action`` (T, *shape), ``reward`` float32
(T,), ``success`` bool (T,) (``info["is_success"]`` after the step), ``done`` bool
(T,) (the episode ended at that step), ``frame_index`` and ``episode_index`` int64
(T,) and ``task_index`` int64 (T,). Frames resolve ``task`` through
``meta/tasks.jsonl``, as in LeRobot.

Durability: an episode file is written to a temporary name, fsynced and renamed, and
only then is its line appended (and fsynced) to ``episodes.jsonl``. A recording
killed at any moment leaves every episode listed there whole; anything not listed
(a temporary file, a file whose line never made it) is removed when the dataset is
opened for writing again, and recording resumes at the next episode.

Reading is lazy: :class:`EpisodeDataset` keeps the index in memory and loads episode
files on demand through a small LRU cache, so datasets far larger than memory can be
sampled frame by frame.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rewards.durable import atomic_write, cut_torn_tail, fsync_folder, read_json_header

FORMAT = "vmalign-dataset"
VERSION = 1
CHUNK_SIZE = 1000
"""Episodes per ``data/chunk-NNN`` folder (LeRobot's default)."""
STEP_KEYS = ("observation.image", "action", "reward", "success", "done", "frame_index",
             "episode_index", "task_index")


class DatasetError(ValueError):
    """A dataset folder that cannot be used as asked; the message says why."""


def append_line(path: Path, record: dict[str, Any]) -> None:
    """Appends ``record`` as one JSON line, flushed and fsynced."""
    with open(path, "a") as handle:
        handle.write(json.dumps(record) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def read_lines(path: Path) -> list[dict[str, Any]]:
    """The records of a JSONL file; a torn last line (a killed append) is ignored."""
    if not path.is_file():
        return []
    records = []
    lines = path.read_text().splitlines()
    for number, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number == len(lines) - 1:
                break  # the append that was cut off
            raise DatasetError(f"{path} line {number + 1} is not JSON: the index is corrupt")
    return records


def cut_torn_line(path: Path) -> None:
    """Cuts a partial last line (an append killed halfway) off the JSONL file ``path``,
    if it exists, so that the next append starts on a fresh line."""
    if path.is_file():
        with open(path, "r+b") as handle:
            cut_torn_tail(handle)


class DatasetWriter:
    """Appends episodes to a dataset folder (new, or one being resumed).

    :param folder: the dataset folder.
    :param features: ``{"observation.image": (dtype, shape), "action": (dtype, shape)}``;
        a resumed dataset must have the same.
    :param meta: what else ``info.json`` records (env id, kwargs, fps, ...); for a
        resumed dataset, its ``env`` must match.
    """

    def __init__(self, folder: str | os.PathLike[str], features: dict[str, tuple[str, Sequence[int]]],
                 meta: dict[str, Any]) -> None:
        self.folder = Path(folder)
        self.features = {key: {"dtype": str(np.dtype(dtype)), "shape": [int(s) for s in shape]}
                         for key, (dtype, shape) in features.items()}
        info_path = self.folder / "meta" / "info.json"
        if info_path.is_file():
            info = read_json_header(info_path, FORMAT, VERSION, "a vmalign dataset")
            if info["features"] != self.features:
                raise DatasetError(f"{self.folder} holds {info['features']}, not the "
                                   f"{self.features} being recorded: use another folder")
            if info.get("env") != meta.get("env") or info.get("env_kwargs") != meta.get("env_kwargs"):
                raise DatasetError(f"{self.folder} was recorded from {info.get('env')} "
                                   f"{info.get('env_kwargs')}, not {meta.get('env')} "
                                   f"{meta.get('env_kwargs')}: use another folder")
            # Datasets written before action labels were recorded hold taken actions.
            if info.get("action_label", "taken") != meta.get("action_label", "taken"):
                raise DatasetError(f"{self.folder} records {info.get('action_label', 'taken')} "
                                   f"actions, not {meta.get('action_label')}: use another folder")
        else:
            (self.folder / "meta").mkdir(parents=True, exist_ok=True)
            info = {"format": FORMAT, "version": VERSION, "features": self.features,
                    "chunk_size": CHUNK_SIZE, **meta}
            text = json.dumps(info, indent=2)
            atomic_write(info_path, lambda handle: handle.write(text.encode()))
        for name in ("episodes.jsonl", "tasks.jsonl"):
            cut_torn_line(self.folder / "meta" / name)
        self.episodes = read_lines(self.folder / "meta" / "episodes.jsonl")
        self.tasks = {record["task"]: record["task_index"]
                      for record in read_lines(self.folder / "meta" / "tasks.jsonl")}
        self._remove_uncommitted()

    def __len__(self) -> int:
        return len(self.episodes)

    @property
    def seeds(self) -> set[int]:
        """Seeds of the episodes already recorded."""
        return {int(record["seed"]) for record in self.episodes if record.get("seed") is not None}

    def _remove_uncommitted(self) -> None:
        listed = {record["file"] for record in self.episodes}
        data = self.folder / "data"
        if not data.is_dir():
            return
        for path in data.rglob("*"):
            if path.is_file() and str(path.relative_to(self.folder)) not in listed:
                path.unlink()  # a temporary or an episode whose commit line never landed

    def add_episode(self, images: np.ndarray, actions: np.ndarray, rewards: np.ndarray,
                    successes: np.ndarray, task: str, seed: int | None,
                    extras: dict[str, np.ndarray] | None = None) -> int:
        """Writes one finished episode durably; returns its ``episode_index``.

        ``extras`` are further per-step arrays (e.g. ``action_mask``) stored with it."""
        steps = len(images)
        if steps == 0:
            raise DatasetError("an episode needs at least one step")
        for key, array in (("observation.image", images), ("action", actions)):
            spec = self.features[key]
            array = np.asarray(array)
            if list(array.shape[1:]) != spec["shape"] or len(array) != steps:
                raise DatasetError(f"{key} has shape {array.shape}, expected ({steps}, "
                                   f"*{spec['shape']})")
        index = len(self.episodes)
        task_index = self._task_index(task)
        done = np.zeros(steps, bool)
        done[-1] = True
        arrays = {
            "observation.image": np.asarray(images, self.features["observation.image"]["dtype"]),
            "action": np.asarray(actions, self.features["action"]["dtype"]),
            "reward": np.asarray(rewards, np.float32),
            "success": np.asarray(successes, bool),
            "done": done,
            "frame_index": np.arange(steps, dtype=np.int64),
            "episode_index": np.full(steps, index, np.int64),
            "task_index": np.full(steps, task_index, np.int64),
        }
        for key, array in (extras or {}).items():
            if key in arrays or len(array) != steps:
                raise DatasetError(f"extra array {key!r} must be new and have {steps} steps")
            arrays[key] = np.asarray(array)
        relative = Path("data", f"chunk-{index // CHUNK_SIZE:03d}", f"episode_{index:06d}.npz")
        path = self.folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda handle: np.savez_compressed(handle, **arrays))
        fsync_folder(path.parent)
        record = {"episode_index": index, "length": steps, "task_index": task_index,
                  "success": bool(arrays["success"][-1]), "seed": seed, "file": str(relative)}
        append_line(self.folder / "meta" / "episodes.jsonl", record)
        self.episodes.append(record)
        return index

    def _task_index(self, task: str) -> int:
        if task not in self.tasks:
            self.tasks[task] = len(self.tasks)
            append_line(self.folder / "meta" / "tasks.jsonl",
                         {"task_index": self.tasks[task], "task": task})
        return self.tasks[task]


class EpisodeDataset:
    """A recorded dataset, read lazily: ``len()`` frames, ``dataset[i]`` one frame as a
    dict of LeRobot-style keys (plus ``task``), :meth:`episode` a whole episode.

    :param folder: a dataset folder written by :class:`DatasetWriter` (``vmalign collect``).
    :param cache_episodes: episode files kept in memory (least recently used dropped).
    """

    def __init__(self, folder: str | os.PathLike[str], cache_episodes: int = 64) -> None:
        self.folder = Path(folder)
        info_path = self.folder / "meta" / "info.json"
        if not info_path.is_file():
            raise FileNotFoundError(f"{info_path} not found: {self.folder} is not a vmalign "
                                    f"dataset (vmalign collect writes one)")
        self.info = read_json_header(info_path, FORMAT, VERSION, "a vmalign dataset")
        self.episodes = read_lines(self.folder / "meta" / "episodes.jsonl")
        tasks = read_lines(self.folder / "meta" / "tasks.jsonl")
        self.tasks = [record["task"] for record in sorted(tasks, key=lambda r: r["task_index"])]
        lengths = np.array([record["length"] for record in self.episodes], np.int64)
        self._starts = np.concatenate([[0], np.cumsum(lengths)])
        self._cache: OrderedDict[int, dict[str, np.ndarray]] = OrderedDict()
        self._cache_size = max(1, int(cache_episodes))

    def __len__(self) -> int:
        return int(self._starts[-1])

    @property
    def num_episodes(self) -> int:
        return len(self.episodes)

    @property
    def env(self) -> str:
        return str(self.info.get("env", ""))

    def episode(self, index: int) -> dict[str, np.ndarray]:
        """All arrays of episode ``index`` (read from disk, or the cache)."""
        if not 0 <= index < len(self.episodes):
            raise IndexError(f"episode {index} out of range ({len(self.episodes)} episodes)")
        if index in self._cache:
            self._cache.move_to_end(index)
            return self._cache[index]
        path = self.folder / self.episodes[index]["file"]
        try:
            with np.load(path, allow_pickle=False) as data:
                missing = [key for key in STEP_KEYS if key not in data.files]
                if missing:
                    raise KeyError(f"lacks {missing}")
                arrays = {key: data[key] for key in data.files}
        except (OSError, ValueError, KeyError) as error:
            raise DatasetError(f"{path} is corrupt or truncated: {error}") from error
        self._cache[index] = arrays
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return arrays

    def locate(self, frame: int) -> tuple[int, int]:
        """``(episode_index, frame_index)`` of global frame number ``frame``."""
        if not 0 <= frame < len(self):
            raise IndexError(f"frame {frame} out of range ({len(self)} frames)")
        episode = int(np.searchsorted(self._starts, frame, side="right") - 1)
        return episode, int(frame - self._starts[episode])

    def __getitem__(self, frame: int) -> dict[str, Any]:
        episode, offset = self.locate(int(frame))
        arrays = self.episode(episode)
        item: dict[str, Any] = {key: arrays[key][offset] for key in STEP_KEYS}
        item["task"] = self.tasks[int(item["task_index"])]
        return item

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for frame in range(len(self)):
            yield self[frame]
