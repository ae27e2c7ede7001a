"""The run's lifecycle under faults: complete checkpoints, exact resume for every algorithm, refusals,
the run-directory lock, damaged checkpoints, SIGTERM, a full disk, hostile values."""
import csv
import dataclasses
import os

import numpy as np
import pytest

from mame_tf.checkpoint import Checkpointer
from mame_tf.config import TrainConfig
from mame_tf.launch import ALGORITHMS, algorithm_class, train_from_configs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = dict(env="point_corner", iterations=4, meta_batch_size=2, episodes_per_task=2, horizon=5,
            wandb_mode="disabled", checkpoint_every=2, quiet=True, hidden_sizes=(8,))


def _train(tmp_path, name="run", **kw):
    return TrainConfig(**{**TINY, "logdir": str(tmp_path / name), **kw})


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _without_times(rows):
    return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in rows]


def _algo_cfg(cls):
    return cls.config_class(**({"latent_dim": 2} if cls.name == "mame" else {}))


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_checkpoint_holds_every_variable_of_every_algorithm(tmp_path, name):
    cls = algorithm_class(name)
    a = cls(_train(tmp_path), _algo_cfg(cls), 2, 2)
    b = cls(_train(tmp_path, seed=5), _algo_cfg(cls), 2, 2)
    items = a.checkpoint_items()
    # every weight of every network and every optimizer variable is in the checkpoint
    for attr, value in vars(a).items():
        for var in getattr(value, "weights", []):
            assert any(v is var for v in items.values()), (attr, var.path)
    for value in items.values():
        value.assign(value + 0.25)
    Checkpointer(str(tmp_path / "ck"), items).save(3, {"x": 1})
    state, skipped = Checkpointer(str(tmp_path / "ck"), b.checkpoint_items(), write=False).restore()
    assert state["iteration"] == 3 and skipped == []
    restored = b.checkpoint_items()
    assert list(restored) == list(items)
    for key, var in items.items():
        np.testing.assert_array_equal(np.asarray(var), np.asarray(restored[key]), err_msg=key)


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_stop_at_2_and_resume_to_4_equals_an_uninterrupted_run(tmp_path, name):
    cls = algorithm_class(name)
    train_from_configs(cls, _train(tmp_path, "full", checkpoint_every=100), _algo_cfg(cls))
    train_from_configs(cls, _train(tmp_path, "split", iterations=2, checkpoint_every=100), _algo_cfg(cls))
    train_from_configs(cls, _train(tmp_path, "split", resume=True, checkpoint_every=100), _algo_cfg(cls))
    full = _rows(tmp_path / "full" / "progress.csv")
    split = _rows(tmp_path / "split" / "progress.csv")
    assert [r["iteration"] for r in split] == ["1", "2", "3", "4"]
    assert _without_times(split) == _without_times(full)
