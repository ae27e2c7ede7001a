"""The one small interface every meta-RL algorithm implements, so one trainer drives them all.

One meta-iteration, for a batch of tasks, reads as follows (the trainer implements exactly this and
never branches on the algorithm)::

    adapted = None                                   # "not adapted yet"
    pre_batches = []
    for k in range(algo.num_exploration_batches(inner_steps)):
        batch = sample(tasks, algo.exploration_policy(adapted))
        pre_batches.append(batch)
        adapted = algo.adapt(batch, adapted, inner_steps)
    post_batch = sample(tasks, algo.exploitation_policy(adapted))
    metrics = algo.update(pre_batches, post_batch)   # training only

* MAML-style baselines (VPG, TRPO, ProMP, E-MAML): the exploration policy is the pre-update policy
  with the current adapted parameters, ``num_exploration_batches(n) == n`` and each ``adapt`` does one
  policy-gradient step on the batch just sampled (re-sampling after each step, as the reference
  implementations do); ``adapted`` holds the per-task parameters with a leading task axis.
* MAME: the exploration policy is μ_φ, ``num_exploration_batches(n) == min(n, 1)`` and ``adapt`` takes
  ``n`` gradient steps on the latent z using that one exploration batch; ``adapted`` is z' ``[T, k]``.

``adapt`` only produces numbers to sample with; ``update`` recomputes the whole inner computation
inside its gradient tapes so that the outer gradient is exact (second order). Meta-testing uses the
same ``exploration_policy`` / ``adapt`` / ``exploitation_policy`` calls with its own number of steps.

Data: ``pre_batches``/``post_batch`` are the sampled :class:`~mame_tf.batch.Batch`es; ``pre``/``post``
their :class:`~mame_tf.processed.Processed` forms. ``adapt`` processes each exploration batch once
(returns, baseline fit, advantages) and ``update`` reuses that result for the very same batch objects;
an adaptation that is never followed by an update (meta-testing) is simply forgotten when the next
adaptation starts.

Construction: ``AlgoClass(settings, config, obs_dim, act_dim)`` with the shared
:class:`AlgorithmSettings` and an instance of ``AlgoClass.config_class``; ``mame_tf.launch.build_algorithm``
builds both from a run's configuration.
"""
from __future__ import annotations

import abc
import dataclasses
from typing import Any, Callable, ClassVar

from mame_tf.batch import Batch, SamplingPolicy
from mame_tf.processed import ExplorationCache, Processed


@dataclasses.dataclass(frozen=True)
class AlgorithmSettings:
    """The shared settings an algorithm reads (built from the run's TrainConfig by ``mame_tf.launch``).

    seed:          seeds the networks' initial weights
    discount:      γ of the returns and advantages
    gae_lambda:    λ of GAE
    hidden_sizes:  hidden layer sizes of every network (unless the algorithm's config says otherwise)
    inner_steps:   inner adaptation steps of meta-training
    eager:         run the update steps eagerly instead of compiling them
    """

    seed: int
    discount: float
    gae_lambda: float
    hidden_sizes: tuple[int, ...]
    inner_steps: int
    eager: bool = False


class MetaAlgorithm(abc.ABC):
    """Abstract meta-RL algorithm. Subclasses set ``name`` and ``config_class`` and implement the methods below.

    The constructor takes the shared settings, the algorithm's own validated config (an instance of
    ``config_class``, a settings dataclass of ``mame_tf.config``) and the environment's dimensions.
    Each exploration batch is processed once (:meth:`process_exploration`) when the algorithm adapts
    to it and the result is reused by :meth:`update` (see ``mame_tf.processed``).
    """

    name: ClassVar[str] = "abstract"
    config_class: ClassVar[type]

    def __init__(self, settings: AlgorithmSettings, config, obs_dim: int, act_dim: int):
        self.check_config(config)
        self.settings = settings
        self.cfg = config
        self._exploration = ExplorationCache()

    @classmethod
    def env_presets(cls, env: str) -> dict[str, Any]:
        """Per-family defaults of the algorithm's own settings, applied to the flags not given (none here)."""
        return {}

    @classmethod
    def check_config(cls, config) -> None:
        """Raise TypeError unless ``config`` is a ``config_class``, ValueError unless it is valid (every
        field, then its own rules), naming the flag, the value and what is allowed."""
        from mame_tf.config import validate

        if not isinstance(config, cls.config_class):
            raise TypeError(f"{cls.__name__} needs a {cls.config_class.__name__}, not a {type(config).__name__}")
        validate(config)

    @classmethod
    def network_shapes(cls, hidden_sizes: tuple[int, ...], config) -> dict[str, Any]:
        """The hidden sizes and activation the networks are built with (recorded in ``config.json``)."""
        return {"hidden_sizes": list(hidden_sizes), "activation": "relu"}

    def compiled(self, fn: Callable) -> Callable:
        """``fn`` as a ``tf.function``, or ``fn`` itself with ``--eager``."""
        import tensorflow as tf

        return fn if self.settings.eager else tf.function(fn)

    # -- processing ------------------------------------------------------------------------------
    @abc.abstractmethod
    def process_exploration(self, batch: Batch) -> Processed:
        """What this algorithm reads of an exploration (pre-update) batch."""

    def processed_exploration(self, batch: Batch, *, new_adaptation: bool) -> Processed:
        """``process_exploration(batch)``, computed once per adaptation and reused by :meth:`update`.

        ``new_adaptation`` (the first batch of an adaptation) forgets the previous adaptation's batches.
        """
        if new_adaptation:
            self._exploration.clear()
        return self._exploration.get(batch, self.process_exploration)

    def take_processed_exploration(self, pre_batches: list[Batch]) -> list[Processed]:
        """The processed ``pre_batches`` (cached or computed now), for an update; then forgets them."""
        pre = [self._exploration.get(batch, self.process_exploration) for batch in pre_batches]
        self._exploration.clear()
        return pre

    @abc.abstractmethod
    def num_exploration_batches(self, inner_steps: int) -> int:
        """How many pre-update batches one adaptation with ``inner_steps`` steps samples."""

    @abc.abstractmethod
    def exploration_policy(self, adapted: Any | None) -> SamplingPolicy:
        """The policy that samples the next pre-update batch (``adapted is None`` before any step)."""

    @abc.abstractmethod
    def adapt(self, batch: Batch, adapted: Any | None, inner_steps: int) -> Any:
        """Adapt to the tasks of ``batch``; returns the new adapted state (per-task, task axis first)."""

    @abc.abstractmethod
    def exploitation_policy(self, adapted: Any | None) -> SamplingPolicy:
        """The post-update policy of the adapted state."""

    @abc.abstractmethod
    def update(self, pre_batches: list[Batch], post_batch: Batch) -> dict[str, float]:
        """One meta-update from a full iteration's data; returns metrics named ``loss/...`` etc."""

    def checkpoint_items(self) -> dict[str, Any]:
        """Every variable of the training state, by name: found by walking this object's attributes.

        Subclasses do not list their variables; whatever network, latent vector or optimizer they hold
        is saved and restored (see ``mame_tf.checkpoint.state_variables``).
        """
        from mame_tf.checkpoint import state_variables

        return state_variables(self)
