"""stable-baselines3 training: PPO from a config against any env and reward module.

- :mod:`agents.sb3.config`: the ``algo: ppo`` schema (rl-zoo key names);
- :mod:`agents.sb3.train`: the trainer (one row of :mod:`agents.algorithms`);
- :mod:`agents.sb3.vector`: the vector env with the reward module swapped in
  (:mod:`agents.sb3.reward_wrappers`; whole-episode rewards through
  :mod:`agents.sb3.relabel`);
- :mod:`agents.sb3.preference_loop`: the online preference loop (a callback);
- :mod:`agents.sb3.callbacks`: metrics, periodic checkpoints, the progress bar;
- :mod:`agents.sb3.checkpoint`: what a PPO checkpoint holds;
- :mod:`agents.sb3.encoders`: image encoders configs name.
"""
