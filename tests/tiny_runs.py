"""Helpers shared by the run tests: a tiny configuration, progress rows, a stream that keeps its text."""
import csv
import os

from mame_tf.config import TrainConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = dict(env="point_corner", iterations=4, meta_batch_size=2, episodes_per_task=2, horizon=5,
            wandb_mode="disabled", checkpoint_every=2, quiet=True, hidden_sizes=(8,))


def tiny_train(tmp_path, name="run", **kw):
    return TrainConfig(**{**TINY, "logdir": str(tmp_path / name), **kw})


def rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


class Lines(list):
    """A text stream that keeps what is written to it."""

    def write(self, text):
        self.append(text)

    def flush(self):
        pass

    def text(self):
        return "".join(self)
