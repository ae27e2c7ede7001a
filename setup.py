"""Installation of mame-tf: Model-Agnostic Meta-Exploration and its baselines in TensorFlow 2.

``install_requires`` gives compatible ranges; ``constraints.txt`` pins the exact set the tests pass
with (``pip install -c constraints.txt -e .``, as the README and CI do).
"""
from setuptools import find_packages, setup

INSTALL_REQUIRES = [
    "tensorflow>=2.18,<3",
    "tf-keras>=2.18,<3",
    "tensorflow-probability>=0.25,<0.26",
    "keras>=3.5,<4",
    "tensorboard>=2.18,<3",
    "gymnasium[mujoco]>=1.0,<2",
    "mujoco>=3.2,<5",
    "absl-py>=2.1,<3",
    "wandb>=0.17,<1",
    "numpy>=1.26,<3",
    "matplotlib>=3.8,<4",
    "imageio>=2.30,<3",
    "pillow>=10",
    "threadpoolctl>=3.1,<4",
    "ray>=2.60,<3",  # launchers/compare.py: runs on an embedded local instance or a cluster
]

EXTRAS = {
    "test": ["pytest>=8,<10"],
}

COMMANDS = {
    "mame-tf-mame": "mame",
    "mame-tf-maml-vpg": "maml_vpg",
    "mame-tf-maml-trpo": "maml_trpo",
    "mame-tf-promp": "promp",
    "mame-tf-emaml": "emaml",
    "mame-tf-compare": "compare",
    "mame-tf-evaluate": "evaluate",
    "mame-tf-visualize": "visualize",
}

with open("README.md", encoding="utf-8") as fh:
    LONG_DESCRIPTION = fh.read()

setup(
    name="mame-tf",
    version="0.2.0",
    description=(
        "Model-Agnostic Meta-Exploration (MAME) with MAML-VPG, MAML-TRPO, ProMP and E-MAML "
        "in TensorFlow 2"
    ),
    long_description=LONG_DESCRIPTION,
    long_description_content_type="text/markdown",
    author="mame-tf developers",
    license="MIT",
    classifiers=[
        "License :: OSI Approved :: MIT License",
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3.11",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
    python_requires=">=3.11,<3.14",
    packages=find_packages(include=["mame_tf", "mame_tf.*", "baselines", "baselines.*", "launchers"]),
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS,
    entry_points={"console_scripts": [f"{cmd} = mame_tf.cli:{fn}" for cmd, fn in COMMANDS.items()]},
)
