"""Networks: Gaussian MLP policies and the regression network, with a functional, task-batched forward.

Every network here is a Keras 3 model that owns its variables, plus a *functional* forward
``forward(params, inputs, ...)`` that takes the parameters explicitly. The functional form is what
meta-learning needs: the inner step produces adapted parameters (tensors, not variables) and the
outer gradient must flow through them, so the same forward has to run on

* the model's own variables (``params = model.params``), shared by every task, or
* per-task parameters with a leading task axis (``per_task=True``): each tensor of ``params`` has
  shape ``[T, *variable_shape]`` and the forward computes all ``T`` tasks in one batched ``einsum``,
  never a Python loop over tasks (a loop over 40 tasks inside ``tf.function`` traces for tens of
  seconds; the batched form traces in about two).

Inputs carry the task axis first: ``x: [T, ..., in_dim]`` (for example ``obs: [T, E, H, obs_dim]``).

Parameter order is fixed and documented: ``[W_0, b_0, W_1, b_1, ..., W_L, b_L]`` for the MLP layers,
followed by ``log_std`` (``[act_dim]``) for Gaussian policies. Kernels use Glorot-uniform
initialisation and biases zeros, as in the policy network of Finn et al. (2017): two hidden layers of
100 ReLU units, a linear mean output and a state-independent learned log standard deviation
initialised to ``log(1.0)``. Its distribution is tensorflow-probability's ``MultivariateNormalDiag``
(:func:`gaussian`), which gives every log-probability and KL of the algorithms.

Latent-conditioned networks (MAME's exploitation policy π_{θ,z}(a|s) and self-supervision network
M_{β,z}(s, a)) concatenate a latent vector ``z`` to their input. ``z`` is either one vector
``[latent_dim]`` shared by all tasks or one per task ``[T, latent_dim]``; it is passed separately from
``params`` because in MAME it is the only adapted quantity.
"""
from __future__ import annotations

import contextlib
import math
from typing import Callable, Iterator, Sequence

import numpy as np
import keras
import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions

ACTIVATIONS: dict[str, Callable[[tf.Tensor], tf.Tensor]] = {
    "relu": tf.nn.relu,
    "tanh": tf.math.tanh,
}


_NUMPY_ACTIVATIONS = {
    "relu": lambda h: np.maximum(h, 0.0, out=h),
    "tanh": lambda h: np.tanh(h, out=h),
}


def _check_activation(name: str) -> Callable[[tf.Tensor], tf.Tensor]:
    if name not in ACTIVATIONS:
        raise ValueError(f"activation={name!r} is not supported; valid choices: {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]


def _check_sizes(hidden_sizes: Sequence[int]) -> tuple[int, ...]:
    sizes = tuple(int(h) for h in hidden_sizes)
    if any(h <= 0 for h in sizes):
        raise ValueError(f"hidden_sizes={tuple(hidden_sizes)!r} must be positive integers")
    return sizes


def concat_latent(x: tf.Tensor, z: tf.Tensor | None) -> tf.Tensor:
    """Concatenate ``z`` to the last axis of ``x``.

    ``x: [T, ..., d]``; ``z`` is ``None``, ``[k]`` (shared by all tasks), ``[T, k]`` (one per task) or
    ``[T, ..., k]`` with the full shape of ``x`` (one per sample, for per-sample gradients).
    Returns ``[T, ..., d + k]``.
    """
    if z is None:
        return x
    z = tf.convert_to_tensor(z, dtype=x.dtype)
    rank = len(x.shape)
    if len(z.shape) == rank and rank > 2:
        return tf.concat([x, z], axis=-1)
    if len(z.shape) == 1:
        z_b = tf.reshape(z, [1] * (rank - 1) + [-1])
    elif len(z.shape) == 2:
        z_b = tf.reshape(z, [tf.shape(z)[0]] + [1] * (rank - 2) + [-1])
    else:
        raise ValueError(f"z must have shape [latent_dim], [T, latent_dim] or x's shape, got {z.shape}")
    z_b = tf.broadcast_to(z_b, tf.concat([tf.shape(x)[:-1], tf.shape(z)[-1:]], axis=0))
    return tf.concat([x, z_b], axis=-1)


def mlp_forward(
    layer_params: Sequence[tf.Tensor],
    x: tf.Tensor,
    activation: Callable[[tf.Tensor], tf.Tensor],
    per_task: bool,
) -> tf.Tensor:
    """Functional MLP: ``[W_0, b_0, ..., W_L, b_L]`` applied to ``x: [T, ..., in]``.

    Hidden layers use ``activation``; the output layer is linear. With ``per_task=True`` each
    ``W_i: [T, in_i, out_i]`` and ``b_i: [T, out_i]`` and task ``t`` of ``x`` uses its own slice.
    """
    if len(layer_params) % 2:
        raise ValueError("layer_params must alternate kernels and biases")
    x = tf.convert_to_tensor(x)
    shape = tf.shape(x)
    if per_task:
        # Flatten the inner axes so each layer is one batched matmul over tasks: [T, N, in].
        h = tf.reshape(x, tf.stack([shape[0], -1, shape[-1]]))
    else:
        h = tf.reshape(x, tf.stack([-1, shape[-1]]))
    n_layers = len(layer_params) // 2
    for i in range(n_layers):
        w, b = layer_params[2 * i], layer_params[2 * i + 1]
        if per_task:
            h = tf.einsum("tni,tio->tno", h, w) + b[:, None, :]
        else:
            h = tf.matmul(h, w) + b
        if i < n_layers - 1:
            h = activation(h)
    out_dim = tf.shape(h)[-1:]
    return tf.reshape(h, tf.concat([shape[:-1], out_dim], axis=0))


class _FunctionalMLP(keras.Model):
    """Shared machinery: owns ``[W_0, b_0, ..., W_L, b_L]`` as Keras variables."""

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        hidden_sizes: Sequence[int],
        activation: str,
        seed: int | None,
        name: str,
    ):
        super().__init__(name=name)
        self.in_dim = int(in_dim)
        self.out_dim = int(out_dim)
        self.hidden_sizes = _check_sizes(hidden_sizes)
        self.activation_name = activation
        self._activation = _check_activation(activation)
        if self.in_dim <= 0 or self.out_dim <= 0:
            raise ValueError(f"in_dim={in_dim} and out_dim={out_dim} must be positive")
        sizes = (self.in_dim,) + self.hidden_sizes + (self.out_dim,)
        rng = np.random.default_rng(seed)
        self._layer_vars = []
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            limit = math.sqrt(6.0 / (n_in + n_out))
            w0 = rng.uniform(-limit, limit, size=(n_in, n_out)).astype(np.float32)
            w = self.add_weight(
                shape=(n_in, n_out), initializer=keras.initializers.Constant(w0), name=f"kernel_{i}"
            )
            b = self.add_weight(shape=(n_out,), initializer="zeros", name=f"bias_{i}")
            self._layer_vars += [w, b]

    @property
    def params(self) -> list:
        """The model's variables in the documented functional order."""
        return list(self._layer_vars)

    def tile_params(self, num_tasks: int, params: Sequence[tf.Tensor] | None = None) -> list[tf.Tensor]:
        """Copies of ``params`` (default: the variables) with a leading task axis ``[T, ...]``."""
        params = self.params if params is None else params
        return [tf.tile(tf.convert_to_tensor(p)[None], [num_tasks] + [1] * len(p.shape)) for p in params]


class GaussianMLPPolicy(_FunctionalMLP):
    """π(a | s) or π(a | s, z): diagonal Gaussian with MLP mean and state-independent log-std.

    ``params = [W_0, b_0, ..., W_L, b_L, log_std]``. ``latent_dim > 0`` makes the policy
    latent-conditioned: the input is ``concat(obs, z)``.
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden_sizes: Sequence[int] = (100, 100),
        activation: str = "relu",
        latent_dim: int = 0,
        init_std: float = 1.0,
        seed: int | None = None,
        name: str = "policy",
    ):
        if latent_dim < 0:
            raise ValueError(f"latent_dim={latent_dim} must be >= 0")
        if not init_std > 0:
            raise ValueError(f"init_std={init_std} must be > 0")
        super().__init__(obs_dim + latent_dim, act_dim, hidden_sizes, activation, seed, name)
        self.obs_dim = int(obs_dim)
        self.act_dim = int(act_dim)
        self.latent_dim = int(latent_dim)
        self.log_std = self.add_weight(
            shape=(act_dim,),
            initializer=keras.initializers.Constant(math.log(init_std)),
            name="log_std",
        )

    @property
    def params(self) -> list:
        return list(self._layer_vars) + [self.log_std]

    def forward(
        self,
        params: Sequence[tf.Tensor],
        obs: tf.Tensor,
        z: tf.Tensor | None = None,
        per_task: bool = False,
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """Mean ``[T, ..., act_dim]`` and log-std broadcast to the same shape."""
        if (z is None) != (self.latent_dim == 0):
            raise ValueError(
                f"{self.name}: latent_dim={self.latent_dim} but z was {'not ' if z is None else ''}given"
            )
        x = concat_latent(tf.cast(obs, params[0].dtype), z)
        mean = mlp_forward(params[:-1], x, self._activation, per_task)
        log_std = params[-1]
        if per_task:
            log_std = tf.reshape(log_std, [-1] + [1] * (len(mean.shape) - 2) + [self.act_dim])
        log_std = tf.broadcast_to(log_std, tf.shape(mean))
        return mean, log_std

    def distribution(self, params, obs, z=None, per_task: bool = False) -> tfd.Distribution:
        """π(·|s[, z]): the tfp distribution :func:`gaussian` of :meth:`forward`, batch shape ``[T, ...]``."""
        return gaussian(*self.forward(params, obs, z, per_task))

    def log_prob(self, params, obs, actions, z=None, per_task: bool = False) -> tf.Tensor:
        """log π(a|s[, z]) ``[T, ...]``."""
        return self.distribution(params, obs, z, per_task).log_prob(tf.cast(actions, params[0].dtype))

    def call(self, obs, z=None):
        """``policy(obs[, z])``: the mean action under the model's own variables (Keras' entry point)."""
        return self.forward(self.params, obs, z)[0]

    def sampling_fn(self, params=None, z=None, per_task: bool = False):
        """A numpy function ``obs [T, E, obs_dim] -> (mean, log_std)`` for the sampler.

        The parameters (default: the current variables) and ``z`` are read once, when the function
        is made, and the forward pass runs in float32 numpy: the sampler calls it once per control
        step on a few hundred observations, where numpy costs a fifth of a ``tf.function`` call (see
        ``benchmarks/sampler_throughput.py``). It computes :meth:`forward` (``tests/test_networks.py``
        checks that they agree); ``mean`` has the shape of ``obs`` with ``act_dim`` last, and
        ``log_std`` broadcasts against it.
        """
        params = self.params if params is None else params
        weights = [np.asarray(p, np.float32) for p in params]
        latent = None if z is None else np.asarray(z, np.float32)
        if (latent is None) != (self.latent_dim == 0):
            raise ValueError(
                f"{self.name}: latent_dim={self.latent_dim} but z was {'not ' if latent is None else ''}given"
            )
        if latent is not None and (latent.ndim not in (1, 2) or latent.shape[-1] != self.latent_dim):
            raise ValueError(f"z must have shape [{self.latent_dim}] or [T, {self.latent_dim}], got {latent.shape}")
        act = _NUMPY_ACTIVATIONS[self.activation_name]
        kernels, biases, log_std = weights[:-1:2], weights[1:-1:2], weights[-1]
        if per_task:  # biases [T, out] -> [T, 1, out] to broadcast over the flattened inner axes
            biases = [b[:, None, :] for b in biases]

        def fn(obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            x = np.asarray(obs, np.float32)
            if latent is not None:
                zb = latent if latent.ndim == 1 else latent.reshape((-1,) + (1,) * (x.ndim - 2) + (self.latent_dim,))
                x = np.concatenate([x, np.broadcast_to(zb, x.shape[:-1] + (self.latent_dim,))], axis=-1)
            h = x.reshape((x.shape[0], -1, x.shape[-1]) if per_task else (-1, x.shape[-1]))
            for i, (w, b) in enumerate(zip(kernels, biases)):
                h = np.matmul(h, w) + b
                if i < len(kernels) - 1:
                    h = act(h)
            mean = h.reshape(x.shape[:-1] + (self.act_dim,))
            ls = log_std.reshape((-1,) + (1,) * (mean.ndim - 2) + (self.act_dim,)) if per_task else log_std
            return mean, np.broadcast_to(ls, mean.shape)

        return fn


# --------------------------------------------------------------------------------------------------
# Diagonal Gaussians: tensorflow-probability distributions.
# --------------------------------------------------------------------------------------------------
def mvn_diag(mean: tf.Tensor, log_std: tf.Tensor) -> tfd.Distribution:
    """``MultivariateNormalDiag(mean, exp(log_std))``: batch shape ``mean.shape[:-1]``, event ``[act_dim]``."""
    return tfd.MultivariateNormalDiag(loc=mean, scale_diag=tf.exp(log_std))


_make_gaussian: Callable[[tf.Tensor, tf.Tensor], tfd.Distribution] = mvn_diag


@contextlib.contextmanager
def gaussian_family(make: Callable[[tf.Tensor, tf.Tensor], tfd.Distribution]) -> Iterator[None]:
    """Within the block, :func:`gaussian` builds ``make(mean, log_std)`` instead of :func:`mvn_diag`.

    ``make`` returns anything with tfp's ``log_prob(x)`` and ``kl_divergence(other)``. The choice is
    read when a function runs eagerly or is *traced*: a ``tf.function`` keeps the distributions it
    was traced with, so build and first call an algorithm's compiled update inside the block
    (``benchmarks/tfp_cost.py`` times other forms against tfp's this way).
    """
    global _make_gaussian
    previous, _make_gaussian = _make_gaussian, make
    try:
        yield
    finally:
        _make_gaussian = previous


def gaussian(mean: tf.Tensor, log_std: tf.Tensor) -> tfd.Distribution:
    """The diagonal Gaussian of every policy here: :func:`mvn_diag` unless :func:`gaussian_family` says otherwise.

    tfp costs no more than the same log-density and KL written out by hand (kept in
    ``benchmarks/tfp_cost.py`` as its reference), in the second-order updates. On an idle machine
    (os.cpu_count() = 2, load average 1.6 at the start), ``python benchmarks/tfp_cost.py
    --forms=closed_form,tfp --algos=mame,maml_trpo --reps=5`` (cheetah_dir, 40 tasks x 20 episodes x
    200 steps, interleaved repetitions) gave median ratios tfp / closed form of 0.99 (MAME) and 1.01
    (MAML-TRPO) for the compiled update functions and 1.01 and 1.05 for the whole updates. The two forms
    agree to float32 rounding; the golden and finite-difference tests pass unchanged with tfp.
    """
    return _make_gaussian(mean, log_std)


def gaussian_kl(mean_p, log_std_p, mean_q, log_std_q) -> tf.Tensor:
    """KL(p ‖ q) of the diagonal Gaussians :func:`gaussian`, summed over the last axis."""
    return gaussian(mean_p, log_std_p).kl_divergence(gaussian(mean_q, log_std_q))


class RegressionMLP(_FunctionalMLP):
    """M(x[, z]): scalar MLP regression head (MAME's self-supervision network M_{β,z}(s, a)).

    ``params = [W_0, b_0, ..., W_L, b_L]``; input ``concat(x, z)``; output ``[T, ...]``.
    """

    def __init__(
        self,
        in_dim: int,
        hidden_sizes: Sequence[int] = (100, 100),
        activation: str = "relu",
        latent_dim: int = 0,
        seed: int | None = None,
        name: str = "regressor",
    ):
        if latent_dim < 0:
            raise ValueError(f"latent_dim={latent_dim} must be >= 0")
        super().__init__(in_dim + latent_dim, 1, hidden_sizes, activation, seed, name)
        self.latent_dim = int(latent_dim)

    def forward(self, params, x, z=None, per_task: bool = False) -> tf.Tensor:
        if (z is None) != (self.latent_dim == 0):
            raise ValueError(
                f"{self.name}: latent_dim={self.latent_dim} but z was {'not ' if z is None else ''}given"
            )
        x = concat_latent(tf.cast(x, params[0].dtype), z)
        return mlp_forward(params, x, self._activation, per_task)[..., 0]

    def call(self, x, z=None):
        """``model(x[, z])``: the prediction under the model's own variables (Keras' entry point)."""
        return self.forward(self.params, x, z)
