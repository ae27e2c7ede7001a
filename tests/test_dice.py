"""The DiCE operator gives exact first- and second-order gradients on an enumerable problem."""
import itertools

import numpy as np
import tensorflow as tf

from mame_tf.dice import dice_weights, magic_box


def test_magic_box_value_and_gradient():
    x = tf.constant([0.3, -2.0], tf.float64)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = magic_box(x)
        total = tf.reduce_sum(y)
    np.testing.assert_array_equal(y.numpy(), [1.0, 1.0])
    np.testing.assert_array_equal(tape.gradient(total, x).numpy(), [1.0, 1.0])


def test_dice_objective_is_exact_to_second_order_on_a_two_step_mdp():
    """Softmax policy over 2 actions at each of 2 steps (logits θ[t]); the step-t cost depends on a_≤t
    and on a parameter w. Averaging the DiCE surrogate over all 4 trajectories with stop-gradient
    probabilities gives exactly the gradient and Hessian of E[Σ_t c_t]."""
    trajs = np.array(list(itertools.product([0, 1], repeat=2)))
    acts = tf.constant(trajs)
    # c_t may depend only on a_≤t (causality): c_0 on a_0, c_1 on (a_0, a_1)
    b0 = np.array([1.0, -0.5])[trajs[:, 0]]
    b1 = np.array([[0.5, -1.0], [3.0, 1.0]])[trajs[:, 0], trajs[:, 1]]
    base = tf.constant(np.stack([b0, b1], axis=1))  # [traj, t]

    def logp(theta):
        logsm = tf.nn.log_softmax(tf.reshape(theta[:4], [2, 2]), axis=-1)
        return tf.stack([tf.gather(logsm[t], acts[:, t]) for t in range(2)], axis=1)

    def costs(theta):
        w = theta[4]
        return base * w + tf.square(w) * tf.cast(acts, tf.float64)

    def exact(theta):
        p = tf.exp(tf.reduce_sum(logp(theta), axis=1))
        return tf.reduce_sum(p * tf.reduce_sum(costs(theta), axis=1))

    def surrogate(theta):
        lp = logp(theta)
        p = tf.stop_gradient(tf.exp(tf.reduce_sum(lp, axis=1)))
        per_traj = tf.reduce_sum(dice_weights(lp, tf.ones_like(lp)) * costs(theta), axis=1)
        return tf.reduce_sum(p * per_traj)

    theta = tf.constant([0.3, -0.2, 0.8, 0.1, 0.7], tf.float64)

    def grad_hess(fn):
        with tf.GradientTape() as outer:
            outer.watch(theta)
            with tf.GradientTape() as inner:
                inner.watch(theta)
                value = fn(theta)
            g = inner.gradient(value, theta)
        return value, g, outer.jacobian(g, theta)

    for a, b in zip(grad_hess(exact), grad_hess(surrogate)):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-12, atol=1e-12)
