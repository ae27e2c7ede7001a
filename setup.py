"""Installation of mame-tf: Model-Agnostic Meta-Exploration and its baselines in TensorFlow 2."""
from setuptools import find_packages, setup

# One set of versions that installs cleanly together on Python 3.11 (CPU).
INSTALL_REQUIRES = [
    "tensorflow==2.21.0",
    "tf-keras==2.21.0",
    "tensorflow-probability==0.25.0",
    "keras==3.15.1",
    "gymnasium[mujoco]==1.4.0",
    "mujoco==4.0.0",
    "absl-py==2.5.1",
    "wandb==0.31.0",
    "numpy==2.4.6",
    "matplotlib==3.11.2",
    "threadpoolctl==3.8.0",
]

EXTRAS = {
    "test": ["pytest==9.0.3"],
}

setup(
    name="mame-tf",
    version="0.1.0",
    description=(
        "Model-Agnostic Meta-Exploration (MAME) with MAML-VPG, MAML-TRPO, ProMP and E-MAML "
        "in TensorFlow 2"
    ),
    python_requires=">=3.11,<3.12",
    packages=find_packages(include=["mame_tf", "mame_tf.*", "baselines", "baselines.*"]),
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS,
)
