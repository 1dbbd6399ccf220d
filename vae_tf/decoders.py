"""Decoders: networks that map a latent `z` to the parameters of `p(x | z)`."""

import math

import keras
from keras import layers, ops

from vae_tf._validation import positive_ints

__all__ = ["DenseDecoder"]


@keras.saving.register_keras_serializable(package="vae_tf")
class DenseDecoder(keras.Model):
    """A multilayer perceptron that maps `z` to the likelihood's parameters.

    The output has shape `param_shape`, e.g. `(28, 28, 1)` logits for a
    Bernoulli likelihood of MNIST; a likelihood with several parameters per
    channel asks for more output channels (`Likelihood.param_channels`).

    Args:
        param_shape: shape of one decoded example, `(height, width, params)`.
        hidden_units: widths of the hidden layers, latent side first.
        activation: activation of the hidden layers.
        **kwargs: passed to `keras.Model` (e.g. `name`).

    Call arguments:
        inputs: latents, shape `(batch, latent_dim)`.

    Returns:
        The likelihood's parameters (`x_params`), shape `(batch, *param_shape)`.

    Example:

    >>> decoder = vae_tf.DenseDecoder(param_shape=(28, 28, 1))
    >>> x_logits = decoder(z)
    """

    def __init__(
        self,
        param_shape: tuple,
        hidden_units: tuple = (256, 512),
        activation: str = "relu",
        **kwargs,
    ):
        super().__init__(**kwargs)
        param_shape = positive_ints("param_shape", param_shape, "(28, 28, 1)", 1)
        hidden_units = positive_ints("hidden_units", hidden_units, "(256, 512)")
        self.param_shape = param_shape
        self.hidden_units = hidden_units
        self.activation = activation
        self.hidden = [
            layers.Dense(units, activation=activation, name=f"hidden_{i}")
            for i, units in enumerate(hidden_units)
        ]
        self.params = layers.Dense(math.prod(param_shape), name="params")

    def call(self, inputs, training=False):
        h = inputs  # (batch, latent_dim)
        for layer in self.hidden:
            h = layer(h)  # (batch, units)
        x_params = self.params(h)  # (batch, prod(param_shape))
        return ops.reshape(x_params, (-1, *self.param_shape))  # (batch, *param_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            param_shape=list(self.param_shape),
            hidden_units=list(self.hidden_units),
            activation=self.activation,
        )
        return config
