"""Agents: wiring envs to reward modules, training, evaluation, and the ``vmalign`` command line.

Agents drive ``envs`` and score them with ``rewards``; neither of those packages
imports this one. Inside, the rooms are:

- ``agents.cli``: one thin module per ``vmalign`` subcommand (parse, call the
  library, print). Library code never imports it.
- ``agents.algorithms``: the algorithm table (name -> config schema, trainer,
  evaluator); ``agents.config`` reads YAML configs into those schemas and
  ``agents.runs`` checks a run and starts it.
- ``agents.sb3``: stable-baselines3 PPO (trainer, vector env, reward wrappers, the
  online preference loop, callbacks, checkpoints).
- ``agents.vla``: the vision-language-action policy and its trainers.
- ``agents.evaluation``: ``vmalign eval``, reward-module agreement, learning curves.
- Shared: ``agents.labelling`` (one labelling round for every teacher),
  ``agents.rollouts`` (scripted rollouts and the one ``Episode`` record),
  ``agents.reward_training``, ``agents.collect`` and ``agents.dataset``,
  ``agents.checkpoint``, ``agents.logs``, ``agents.output``, ``agents.metrics``,
  ``agents.preview``.

How to add an algorithm, an environment or a reward module: ``docs/adding.md``.
"""
