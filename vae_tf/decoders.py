"""Decoders: networks that map a latent `z` to the parameters of `p(x | z)`."""

import math

import keras
from keras import layers, ops

from vae_tf._validation import (
    decoder_param_shape,
    non_negative_int,
    positive_ints,
)
from vae_tf.encoders import resolution_stages

__all__ = ["DenseDecoder", "ConvDecoder"]


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


@keras.saving.register_keras_serializable(package="vae_tf")
class ConvDecoder(keras.Model):
    """A convolutional decoder: stride-2 transposed convolutions up to the image.

    The latent is first mapped to a `filters[0]`-channel feature map at
    `1 / 2 ** len(filters)` of the image size (a dense layer and a reshape for
    a vector latent, a 3x3 convolution for a spatial latent map); each stage
    then doubles the size with a stride-2 transposed convolution to
    `filters[i]` channels followed by `residual_blocks` residual blocks; a
    final 3x3 convolution gives the likelihood's parameters, cropped to the
    image size when that is not a multiple of the factor.

    Args:
        param_shape: `(height, width, params_per_pixel)`, the shape of one
            decoded example (`Likelihood.param_channels` per pixel), as every
            decoder takes it; height and width are required for a vector
            latent, `None` for a fully convolutional decoder (any size).
            (0.1's `output_channels` and `image_size` work until 0.3.)
        latent_dim: size of a vector latent (exclusive with `latent_channels`).
        latent_channels: channels of a spatial latent map.
        filters: widths of the upsampling stages, latent side first.
        residual_blocks: residual blocks after each upsampling.
        activation: activation of the hidden layers.
        **kwargs: passed to `keras.Model`.

    Returns:
        The likelihood's parameters, `(batch, height, width, params_per_pixel)`.

    Raises:
        ValueError: for a malformed `param_shape`, both latent forms or
            neither, or a vector latent without image sizes.

    Example:

    >>> decoder = vae_tf.ConvDecoder((32, 32, 100), latent_dim=64)  # CIFAR-10
    >>> decoder = vae_tf.ConvDecoder((None, None, 1), latent_channels=4)
    """

    def __init__(
        self,
        param_shape: tuple | None = None,
        latent_dim: int | None = None,
        latent_channels: int | None = None,
        filters: tuple = (64, 32),
        residual_blocks: int = 0,
        activation: str = "gelu",
        output_channels: int | None = None,
        image_size: tuple | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        image_size, output_channels = decoder_param_shape(
            param_shape, output_channels, image_size, "ConvDecoder"
        )
        if (latent_dim is None) == (latent_channels is None):
            raise ValueError(
                "Give exactly one of latent_dim (a latent vector) and latent_channels "
                f"(a spatial latent map). Received: latent_dim={latent_dim!r}, "
                f"latent_channels={latent_channels!r}"
            )
        if latent_dim is not None and image_size is None:
            raise ValueError(
                "A decoder of a latent vector needs the image size: param_shape="
                "(height, width, params_per_pixel). Received: param_shape="
                f"(None, None, {output_channels})"
            )
        self.output_channels = output_channels
        self.image_size = image_size
        self.latent_dim = latent_dim
        self.latent_channels = latent_channels
        self.filters = positive_ints("filters", filters, "(64, 32)", 1)
        non_negative_int("residual_blocks", residual_blocks)
        self.residual_blocks = residual_blocks
        self.activation = activation
        self.factor = 2 ** len(self.filters)
        if latent_dim is not None:
            height, width = self.image_size
            self.base_size = (-(-height // self.factor), -(-width // self.factor))
            self.project = layers.Dense(
                self.base_size[0] * self.base_size[1] * self.filters[0],
                activation=activation,
                name="project",
            )
        else:
            self.project = layers.Conv2D(
                self.filters[0],
                3,
                padding="same",
                activation=activation,
                name="project",
            )
        self.stages = resolution_stages(
            self.filters, residual_blocks, activation, upsample=True
        )
        self.head_activation = layers.Activation(activation)
        self.params = layers.Conv2D(
            self.output_channels, 3, padding="same", name="params"
        )

    @property
    def param_shape(self) -> tuple:
        """`(height, width, output_channels)`; sizes are `None` when any size works."""
        height, width = self.image_size or (None, None)
        return (height, width, self.output_channels)

    def call(self, inputs, training=False):
        h = self.project(inputs)
        if self.latent_dim is not None:
            h = ops.reshape(
                h, (-1, *self.base_size, self.filters[0])
            )  # (batch, h/f, w/f, f0)
        for stage in self.stages:
            for layer in stage:
                h = layer(h)  # (batch, 2h, 2w, width)
        x_params = self.params(
            self.head_activation(h)
        )  # (batch, H', W', output_channels)
        if self.image_size is not None:
            x_params = x_params[:, : self.image_size[0], : self.image_size[1], :]
        return x_params

    def get_config(self):
        config = super().get_config()
        config.update(
            param_shape=list(self.param_shape),
            latent_dim=self.latent_dim,
            latent_channels=self.latent_channels,
            filters=list(self.filters),
            residual_blocks=self.residual_blocks,
            activation=self.activation,
        )
        return config
