"""Meta-RL baselines on mame-tf's shared core: MAML-VPG, MAML-TRPO, ProMP and E-MAML."""
