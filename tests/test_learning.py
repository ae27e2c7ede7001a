"""Seeded learning test (slow): a short MAME run on point_corner_strict clearly improves the post-update return.

Run with ``python -m pytest -m slow``.
"""
import numpy as np
import pytest

from mame_tf.config import TrainConfig
from mame_tf.launch import train_from_configs
from mame_tf.mame import MAME, MAMEConfig


@pytest.mark.slow
def test_mame_improves_post_update_return_on_point_corner_strict(tmp_path):
    import csv

    train = TrainConfig(env="point_corner_strict", seed=0, iterations=40, meta_batch_size=20, episodes_per_task=10,
                        horizon=100, logdir=str(tmp_path / "run"), wandb_mode="disabled", quiet=True,
                        checkpoint_every=40)
    train_from_configs(MAME, train, MAMEConfig())
    with open(tmp_path / "run" / "progress.csv", newline="") as fh:
        post = np.array([float(r["post_adapt/return"]) for r in csv.DictReader(fh)])
    first, last = post[:5].mean(), post[-5:].mean()
    print(f"post-update return: first 5 iterations {first:.3f}, last 5 {last:.3f}")
    assert last > first + 0.5, (first, last)
