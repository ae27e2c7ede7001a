"""Console and records: quiet TensorFlow start-up, progress lines, ETA, run summary, provenance,
TensorBoard, wandb exit codes, --help."""
import json
import math
import os
import subprocess
import sys

import pytest

from mame_tf.config import TrainConfig
from mame_tf.launch import train_from_configs
from mame_tf.logger import Logger, progress_line
from mame_tf.mame import MAME, MAMEConfig
from mame_tf.quiet import filter_startup_lines
from test_launch import _Lines  # a stream that keeps what is written

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STARTUP = ("absl::InitializeLog", "oneDNN custom operations", "Could not find cuda drivers", "cuInit",
           "cpu_feature_guard")


def test_tensorflow_starts_quietly_through_the_launch_module():
    code = ("import mame_tf.launch\nimport tensorflow as tf\nprint(float(tf.constant(1.0) + 1))\n"
            "import sys; print('a real message', file=sys.stderr)\n")
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0 and out.stdout.strip() == "2.0", out.stderr[-2000:]
    assert not [s for s in STARTUP if s in out.stderr], out.stderr
    assert "a real message" in out.stderr


def test_startup_filter_keeps_other_lines():
    text = ("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
            "E0000 00:00:1.2 123 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error\n"
            "E0000 00:00:1.2 123 op_kernel.cc:1] something real went wrong\n"
            "Traceback (most recent call last):\n")
    assert filter_startup_lines(text) == ("E0000 00:00:1.2 123 op_kernel.cc:1] something real went wrong\n"
                                          "Traceback (most recent call last):\n")


def test_progress_lines_fit_100_columns():
    row = {"iteration": 9999, "env_steps": 999_999_999, "pre_adapt/return": -99999.999,
           "post_adapt/return": 99999.999, "time/sampling": 998.0, "time/update": 12.5}
    assert len(progress_line(row, 9999, 99 * 3600 + 3599)) <= 100
    row.update(iteration=1, env_steps=160_000)
    assert progress_line(row, 300, math.nan).endswith("ETA -:--:--")


def test_eta_follows_recent_iterations(tmp_path):
    lines = _Lines()
    logger = Logger(str(tmp_path), 100, {}, wandb_mode="disabled", stream=lines)
    for it, seconds in ((1, 600.0), (2, 1.0), (3, 1.0)):  # the first iteration compiles
        logger.log({"iteration": it, "env_steps": it, "pre_adapt/return": 0.0, "post_adapt/return": 0.0,
                    "time/sampling": 0.1, "time/update": 0.1, "time/iteration": seconds})
    logger.close()
    printed = lines.text().splitlines()
    assert printed[0].endswith("ETA 16:30:00")  # all it knows at first: 99 iterations at 600 s
    assert printed[1].endswith("ETA 0:01:38")  # then the compiling iteration no longer counts
    assert printed[2].endswith("ETA 0:01:37")  # 97 iterations left at 1 s, not at (600 + 2) / 3 s


def test_wandb_records_an_interrupted_run(tmp_path):
    class FakeRun:
        summary = {}
        finished_with = None

        def finish(self, exit_code=0):
            FakeRun.finished_with = exit_code

    logger = Logger(str(tmp_path), 10, {}, wandb_mode="disabled")
    logger._wandb = FakeRun()
    logger.close(130)
    assert FakeRun.finished_with == 130 and FakeRun.summary == {"exit_code": 130, "status": "interrupted"}


def test_finished_run_prints_a_summary_and_records_provenance_and_tensorboard(tmp_path):
    lines = _Lines()
    logdir = str(tmp_path / "run")
    train = TrainConfig(env="point_corner", iterations=2, meta_batch_size=2, episodes_per_task=2, horizon=5,
                        wandb_mode="disabled", quiet=True, hidden_sizes=(8,), logdir=logdir, tensorboard=True)
    train_from_configs(MAME, train, MAMEConfig(latent_dim=2), stream=lines)
    last = lines.text().strip().splitlines()[-1]
    assert last.startswith("finished mame on point_corner: 2 iterations, 80 env steps, ")
    assert "post-update return" in last and last.endswith(f"run directory {logdir}")
    with open(os.path.join(logdir, "provenance.json")) as fh:
        start = json.load(fh)["starts"][-1]
    assert start["python"] == sys.version.split()[0] and start["packages"]["tensorflow"]
    assert start["command"][0] == sys.executable and "git_commit" in start
    events = os.listdir(os.path.join(logdir, "tensorboard"))
    assert len(events) == 1 and events[0].startswith("events.out.tfevents")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: F401

    acc = EventAccumulator(os.path.join(logdir, "tensorboard"))
    acc.Reload()
    tags = acc.Tags()["tensors"] or acc.Tags()["scalars"]
    assert "post_adapt/return" in tags


def test_helpfull_lists_the_project_flags_first_with_the_presets():
    out = subprocess.run([sys.executable, os.path.join(ROOT, "launchers", "run_promp.py"), "--helpfull"],
                         capture_output=True, text=True, timeout=600)
    text = out.stdout
    assert "cheetah_dir          --horizon=200, --iterations=800" in text
    first_module = [line for line in text.splitlines() if line.endswith(".py:") or line.startswith("absl.")][0]
    assert first_module.endswith("run_promp.py:")
    project = text.split(first_module, 1)[1].split("\nabsl.", 1)[0]
    assert "--clip_eps" in project and "--meta_batch_size" in project
    assert not [s for s in STARTUP if s in out.stderr]


def test_evaluate_defaults_to_the_training_inner_steps_and_keeps_earlier_results(tmp_path):
    from baselines.maml_vpg import MAMLVPG, MAMLVPGConfig

    logdir = tmp_path / "run"
    train = TrainConfig(env="point_corner", iterations=2, meta_batch_size=2, episodes_per_task=2, horizon=5,
                        wandb_mode="disabled", quiet=True, hidden_sizes=(8,), logdir=str(logdir), checkpoint_every=2)
    train_from_configs(MAMLVPG, train, MAMLVPGConfig())
    evaluate = os.path.join(ROOT, "launchers", "evaluate.py")
    first = subprocess.run([sys.executable, evaluate, f"--logdir={logdir}", "--eval_tasks=3"],
                           capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "trained with 1 inner step;" in first.stdout
    assert "k=0, pre-update policy π_θ" in first.stdout and "k=1 inner steps (as trained)" in first.stdout
    default = logdir / "eval" / "iter000002-k1-tasks3-eps2-seed12345.json"
    result = json.loads(default.read_text())
    assert sorted(result["steps"]) == ["0", "1"] and result["training_inner_steps"] == 1
    row = result["steps"]["1"]
    assert row["eval/post_adapt/return_ci95_low"] <= row["eval/post_adapt/return"] <= \
        row["eval/post_adapt/return_ci95_high"]
    assert len(result["post_adapt_return_per_task"]["1"]) == 3
    second = subprocess.run([sys.executable, evaluate, f"--logdir={logdir}", "--eval_tasks=3", "--inner_steps=2"],
                            capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-2000:]
    assert json.loads(default.read_text()) == result  # the earlier evaluation is kept
    assert (logdir / "eval" / "iter000002-k2-tasks3-eps2-seed12345.json").exists()
    assert not [s for s in STARTUP if s in first.stderr + second.stderr]


def test_console_command_runs_its_launcher(tmp_path):
    code = "import sys; sys.argv = ['mame-tf-visualize', '--logdir=%s']; from mame_tf.cli import visualize; visualize()"
    out = subprocess.run([sys.executable, "-c", code % tmp_path], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 2 and f"error: --logdir={str(tmp_path)!r} has no config.json" in out.stderr
