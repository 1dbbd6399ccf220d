"""Fast seeded random draws for the training step.

`keras.random.uniform` / `normal` call TensorFlow's stateless ops with the
default ("auto_select") algorithm, which under XLA on CPU costs about as much
as a dense layer for one MNIST batch of uniforms. Naming the counter-based
Philox algorithm makes it several times faster there (ThreeFry is as fast
under XLA but fails without it). These helpers take the same seeds as
`keras.random` (an int, a `keras.random.SeedGenerator` or `None`) and also an
int tensor, so that an exported graph draws what `seed=int` draws in Python.
"""

import keras
import tensorflow as tf

__all__ = ["uniform", "normal", "derive"]


def _stateless_seed(seed):
    if isinstance(seed, keras.random.SeedGenerator):
        seed = seed.next()  # advances the generator's state
    elif seed is None:
        seed = tf.random.uniform((2,), maxval=2**31 - 1, dtype=tf.int64)
    elif isinstance(seed, (tf.Tensor, tf.Variable)):
        seed = tf.reshape(tf.cast(seed, tf.int64), (-1,))
        seed = (
            seed
            if seed.shape[0] == 2
            else tf.stack([seed[0], tf.constant(0, tf.int64)])
        )
    else:
        seed = tf.constant([int(seed), 0], tf.int64)
    return tf.cast(tf.math.floormod(seed, 2**31 - 1), tf.int32)


def uniform(shape, seed=None):
    """Uniform float32 in [0, 1) of `shape`."""
    return tf.random.stateless_uniform(shape, seed=_stateless_seed(seed), alg="philox")


def normal(shape, seed=None):
    """Standard normal float32 of `shape`."""
    return tf.random.stateless_normal(shape, seed=_stateless_seed(seed), alg="philox")


def derive(seed, index: int):
    """The seed of the `index`-th independent draw of one call.

    A `SeedGenerator` (or `None`) advances by itself between draws and is
    returned as it is. An int or int tensor `s` always starts the same
    stream, so two draws of one call seeded with `s` would reuse the same
    random numbers; `derive` gives draw `index` the stream `[s, index]`
    (index 0 is the stream of `s` itself).
    """
    if seed is None or isinstance(seed, keras.random.SeedGenerator):
        return seed
    first = tf.reshape(tf.cast(seed, tf.int64), (-1,))[0]
    return tf.stack([first, tf.constant(index, tf.int64)])
