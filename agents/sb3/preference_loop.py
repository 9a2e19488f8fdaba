"""The online preference loop: PPO alternates with asking a teacher and refitting the reward.

As in Christiano et al. (2017) and PEBBLE, and the imitation library's preference
comparisons: while PPO trains on the learned reward, the loop keeps the most recent
``buffer_steps`` steps of every env (frames the reward model sees, the env's own
reward for simulated teachers, the instruction). At the end of the first rollout it
asks ``initial_queries`` uniformly drawn segment pairs (both segments of a pair from
one episode with ``pairing: same_episode``, the default; see :mod:`rewards.query`);
then, every ``update_every``
environment steps, ``queries_per_round`` pairs chosen by ``query`` (ensemble
disagreement by default) from a pool ``pool_factor`` times larger, until
``total_queries`` pairs have been asked. Each round appends its labels to the
run's :class:`~rewards.preference_store.PreferenceStore` (durably, before anything
else) and retrains the ensemble (``epochs`` passes, from its current weights) on every
label so far, or with ``train_pairs`` on that many: the labels new since the last
round plus a uniform sample of the older ones. PPO's next rollout is scored by the
new reward.

With ``demo_episodes``, that many scripted episodes (:func:`demonstrations`, the env's
expert played by ``demo_policy``) join every round's pool of episodes to cut segments
from, so the teacher compares the policy's behaviour with the task done (DemPref's
and RAPL's demonstrations); their labels count against the budget like any other.

With ``initial_labels`` (a preference store folder) the run's store first receives a
copy of those labels, and the reward trains on them before the first rollout; they
do not count against the query budget.

The store is the record of what was asked: each batch carries the round, the step
and how many pairs were asked (skipped ones included) in its ``meta``. On resume
the loop counts its budget and schedules its next round from the store, and
retrains the reward on labels that arrived after the checkpoint, so a kill never
loses a label and a resumed run asks on the schedule of one never stopped.

Each round is :func:`agents.labelling.label_round` followed by
:func:`agents.labelling.refit`, as in ``vmalign reward-train``. With PPO the round
runs just before advantages are computed and the rollout it was asked after is
rescored by the refit reward (:meth:`PreferenceLoop.rescore_rollout`, through the
same relabelling rollout buffer RAPL's episode rewards use); with SAC every reward
in the replay buffer is recomputed after it (PEBBLE, :mod:`agents.sb3.replay`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from agents.labelling import label_round, make_teacher, refit
from agents.labelling.pending import PendingQueue, pending_folder
from agents.rollouts import Episode, collect_episode
from agents.sb3.config import PreferenceSettings
from agents.sb3.reward_wrappers import VecRewardWrapper, score_in_batches
from rewards.preference_store import PreferenceStore

PREFERENCES = "preferences"
"""The run folder's preference store."""
IMPORTED = "imported_from"
"""Meta key of the batches :func:`import_labels` wrote: the folder they came from."""
DEMO_SEED_OFFSET = 3_000_000
"""Demonstration episode i is reset with the run's seed + this + i: apart from
training's seeds (from the run's seed up) and evaluation's (+ 1,000,000)."""


def demonstrations(env_id: str, env_kwargs: dict[str, Any], policy: str, count: int,
                   seed: int) -> list[Episode]:
    """``count`` episodes of ``policy`` in an env made as the training envs are, with
    the reward view rendered after each step (the frames the loop keeps). Seeded, so a
    resumed run's pool holds the very same episodes."""
    if count == 0:
        return []
    env = gym.make(env_id, render_mode="rgb_array", **env_kwargs)
    try:
        return [collect_episode(env, policy, seed + DEMO_SEED_OFFSET + index)
                for index in range(count)]
    finally:
        env.close()


class _EnvHistory:
    """One env's recent steps: finished episodes plus the running one, oldest dropped
    first once more than ``limit`` steps are kept."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.finished: list[Episode] = []
        self.frames: list[np.ndarray] = []
        self.rewards: list[float] = []
        self.instruction = ""

    def add(self, frame: np.ndarray, reward: float, instruction: str, done: bool) -> None:
        self.frames.append(frame)
        self.rewards.append(reward)
        self.instruction = instruction
        if done:
            self.finished.append(self._episode())
            self.frames, self.rewards = [], []
        kept = len(self.frames) + sum(len(e) for e in self.finished)
        while self.finished and kept > self.limit:
            kept -= len(self.finished.pop(0))

    def _episode(self) -> Episode:
        return Episode(np.stack(self.frames), np.asarray(self.rewards, np.float32),
                       self.instruction)

    def episodes(self, min_length: int) -> list[Episode]:
        running = [self._episode()] if len(self.frames) >= min_length else []
        return [e for e in self.finished if len(e) >= min_length] + running


def store_schedule(store: PreferenceStore) -> tuple[int, int, int | None]:
    """(pairs asked, rounds, step of the last round) recorded in ``store``: one batch
    per round; labels imported from ``initial_labels`` count in none of them. A
    person's rounds (one batch per click) are read from the pending queue beside the
    store instead: each closed round counts the pairs answered in it."""
    batches: dict[str, tuple[int, int | None]] = {}
    for record in store.records():
        meta = record.get("meta", {})
        if IMPORTED not in meta and "pending_round" not in meta:
            step = meta.get("step")
            batches[record["batch"]] = (int(meta.get("asked", 1)),
                                        None if step is None else int(step))
    rounds = list(batches.values())
    if pending_folder(store).is_dir():
        rounds += PendingQueue(store).answered_in_closed_rounds()
    steps = [step for _asked, step in rounds if step is not None]
    return (sum(asked for asked, _step in rounds), len(rounds), max(steps) if steps else None)


def import_labels(store: PreferenceStore, folder: str | Path,
                  frame_shape: tuple[int, ...]) -> int:
    """Copies every label of the store at ``folder`` into the run's ``store``, once:
    a run resumed after the copy finds them there and copies nothing (returns 0).

    They seed the reward model before the first rollout (a label set from
    ``vmalign reward-train``, or an earlier run's ``preferences/``) and do not count
    against ``total_queries``. ``frame_shape`` is ``(segment, H, W, 3)``, the shape of
    the loop's own segments: a store holds one shape, so the imported ones must match.
    """
    if any(IMPORTED in record.get("meta", {}) for record in store.records()):
        return 0
    source = PreferenceStore(folder)
    if source.frame_shape is None or len(source) == 0:
        raise ValueError(f"preference.initial_labels: {folder} holds no labels")
    if tuple(source.frame_shape) != tuple(frame_shape):
        raise ValueError(
            f"preference.initial_labels: {folder} holds segments of shape "
            f"{tuple(source.frame_shape)} (steps, H, W, 3) but this run cuts "
            f"{tuple(frame_shape)}: preference.segment and the reward view's size "
            f"(env_kwargs render_size) must match the imported labels")
    pairs = source.load_all()
    # One batch per labeller, so each pair keeps its source.
    for name in dict.fromkeys(pairs.sources):
        rows = [i for i, labeller in enumerate(pairs.sources) if labeller == name]
        instructions = [pairs.instructions[i] for i in rows]
        store.append(pairs.frames_a[rows], pairs.frames_b[rows], pairs.labels[rows], source=name,
                     instructions=instructions if all(isinstance(t, str) for t in instructions)
                     else None,
                     meta={IMPORTED: str(folder), "asked": 0})
    return len(pairs)


class PreferenceLoop(BaseCallback):
    """Asks the teacher and refits the preference reward between PPO rollouts.

    :param layer: the env's :class:`VecRewardWrapper`, built with ``keep_frames=True``.
    :param reward: the :class:`~rewards.preference.PreferenceReward` being trained.
    :param store: where labels go (the run's ``preferences/`` folder).
    :param settings: the config's ``preference`` section.
    :param seed: seeds query drawing and reward training (round ``k`` uses ``seed + k``).
    :param state: the loop's state from a checkpoint (None for a new run).
    :param first_round_at: the step of the first round (after unsupervised
        pre-training, so the first queries compare diverse behaviour).
    :param after_refit: called after every reward update (SAC relabels its replay
        buffer there).
    :param rewrite_rollouts: PPO: rounds run when the rollout buffer asks
        (:meth:`rescore_rollout`), whose rewards are rewritten with the new reward
        before advantages; ``scale`` maps raw scores to PPO's (normalised) rewards.
    :param demos: scripted episodes added to every round's pool (``demo_episodes``).
    """

    def __init__(self, layer: VecRewardWrapper, reward: Any, store: PreferenceStore,
                 settings: PreferenceSettings, seed: int,
                 state: dict[str, Any] | None = None, first_round_at: int = 0,
                 after_refit: Callable[[], None] | None = None,
                 rewrite_rollouts: bool = False,
                 scale: Callable[[np.ndarray], np.ndarray] | None = None,
                 demos: Sequence[Episode] = ()) -> None:
        super().__init__()
        self.demos = list(demos)
        self.layer = layer
        self.reward = reward
        self.store = store
        self.settings = settings
        self.seed = seed
        self.histories = [_EnvHistory(settings.buffer_steps) for _ in range(layer.num_envs)]
        state = state or {}
        self.asked, self.rounds, last_round_at = store_schedule(store)
        # The store knows of rounds asked after the checkpoint this run resumes from
        # (the checkpoint does not): the next round is due update_every steps after
        # the last one recorded, as in a run that was never stopped.
        self.after_refit = after_refit
        self.rewrite_rollouts, self.scale = rewrite_rollouts, scale
        self._on_rollout_start()
        self.next_round_at = int(state.get("next_round_at", first_round_at))
        if last_round_at is not None:
            self.next_round_at = max(self.next_round_at, last_round_at + settings.update_every)
        self.labels_trained = int(state.get("labels_trained", 0))
        self.teacher: Any = None
        self.last_accuracy: float | None = state.get("last_accuracy")

    def state(self) -> dict[str, Any]:
        """What a checkpoint keeps (the budget itself is read back from the store)."""
        return {"next_round_at": self.next_round_at, "labels_trained": self.labels_trained,
                "last_accuracy": self.last_accuracy}

    def _on_training_start(self) -> None:
        open_round = self._open_human_round()
        if open_round is not None:
            # Killed while a person labelled: wait for that same round's pairs first.
            step = PendingQueue(self.store).header(open_round)["meta"].get("step")
            self._ask(self.settings.queries_per_round, self.settings.query)
            if step is not None:
                self.next_round_at = max(self.next_round_at,
                                         int(step) + self.settings.update_every)
        elif len(self.store) > self.labels_trained:
            # Labels written after the checkpoint this run resumed from: train on them.
            self._refit(self.rounds)

    def _on_training_end(self) -> None:
        if hasattr(self.teacher, "close"):
            self.teacher.close()  # the labelling page's server

    def _open_human_round(self) -> int | None:
        """A person's round posted before a restart and still open, if any."""
        if self.settings.teacher != "human" or not pending_folder(self.store).is_dir():
            return None
        return PendingQueue(self.store).open_round()

    def _on_rollout_start(self) -> None:
        self._rollout_frames: list[np.ndarray] = []
        self._rollout_texts: list[list[str]] = []
        self._rollout_scores: list[np.ndarray] = []
        self._refit_in_rollout = False

    def _on_step(self) -> bool:
        frames, env_rewards = self.layer.last_frames, self.layer.last_env_rewards
        dones, infos = self.locals["dones"], self.locals["infos"]
        for i, history in enumerate(self.histories):
            history.add(frames[i], float(env_rewards[i]), str(infos[i].get("instruction", "")),
                        bool(dones[i]))
        if self.rewrite_rollouts:
            # A copy: PPO adds the truncation bootstrap to this very array afterwards.
            self._rollout_frames.append(frames)
            self._rollout_texts.append([str(info.get("instruction", "")) for info in infos])
            self._rollout_scores.append(np.array(self.locals["rewards"], np.float32))
        return True

    def _on_rollout_end(self) -> None:
        if not self.rewrite_rollouts:  # else the round ran in rescore_rollout already
            self._round_if_due()

    def _round_if_due(self) -> None:
        budget = self.settings.total_queries - self.asked
        if budget <= 0 or self.num_timesteps < self.next_round_at:
            return
        first = self.rounds == 0
        count = min(self.settings.initial_queries if first else self.settings.queries_per_round,
                    budget)
        if count > 0 and not self._ask(count, "uniform" if first else self.settings.query):
            return  # nothing long enough to cut segments from yet: after the next rollout
        self.next_round_at = self.num_timesteps + self.settings.update_every

    def rescore_rollout(self) -> tuple[np.ndarray, np.ndarray]:
        """For PPO's rollout buffer, just before advantages are computed: runs the round
        if one is due, and returns the rollout's rewards under the reward as it is now
        and as they were given, each (n_steps, n_envs), so a round's new reward already
        shapes the advantages of the rollout it was asked after (rather than from the
        next rollout on). ``scale`` maps raw scores to what PPO saw (reward
        normalisation)."""
        self._round_if_due()
        given = np.stack(self._rollout_scores)
        if not self._refit_in_rollout:
            return given, given
        frames = np.stack(self._rollout_frames)  # (n_steps, n_envs, H, W, 3)
        texts = [text for step in self._rollout_texts for text in step]
        scores = score_in_batches(self.reward, frames.reshape(-1, *frames.shape[2:]), texts,
                                  np.zeros(len(texts), np.float32)).reshape(given.shape)
        return self.scale(scores) if self.scale is not None else scores, given

    def _ask(self, count: int, method: str) -> bool:
        """One round; False when no episode is long enough for a query yet."""
        settings = self.settings
        # A same-episode pair needs two different starts: one step more than a segment.
        shortest = settings.segment + 1 if settings.pairing == "same_episode" else settings.segment
        episodes = [e for history in self.histories for e in history.episodes(shortest)]
        episodes += [e for e in self.demos if len(e) >= shortest]
        if not episodes and self._open_human_round() is None:
            return False
        if self.teacher is None:
            self.teacher = make_teacher(settings.teacher, settings.teacher_kwargs, episodes,
                                        settings.segment, self.seed)
        result = label_round(episodes, count, method, self.reward, self.teacher, self.store,
                             np.random.default_rng(self.seed + self.rounds), settings.segment,
                             settings.pool_factor, settings.pairing,
                             meta={"round": self.rounds, "step": int(self.num_timesteps),
                                   "budget": settings.total_queries,
                                   "asked_before": self.asked})
        self.asked += result.asked
        self.rounds += 1
        self._refit(self.rounds)
        self.logger.record("preference/asked", self.asked)
        self.logger.record("preference/labels", len(self.store))
        self.logger.record("preference/skipped", result.skipped)
        return True

    def _refit(self, round_index: int) -> None:
        if len(self.store) == 0:
            return
        metrics = refit(self.reward, self.store, self.settings.epochs, self.settings.lr,
                        seed=self.seed + round_index, limit=self.settings.train_pairs,
                        new_from=self.labels_trained)
        self.labels_trained = len(self.store)
        self.last_accuracy = metrics.accuracy
        self._refit_in_rollout = True
        if self.after_refit is not None:
            self.after_refit()
        self.logger.record("preference/training_accuracy", metrics.accuracy)
        self.logger.record("preference/training_seconds", metrics.seconds)
