"""Vision-language-action policies: the model, behaviour cloning, PPO and DPO."""
