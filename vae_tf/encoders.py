"""Encoders `q(z | x)`: networks that map images to a diagonal Gaussian posterior."""

import keras
from keras import layers, ops

from vae_tf._validation import non_negative_int, positive_int, positive_ints

__all__ = [
    "DenseEncoder",
    "ConvEncoder",
    "ResidualBlock",
    "bound_log_var",
    "resolution_stages",
]


def bound_log_var(raw, bound: float):
    """Softly bound a log-variance to `(-bound, bound)`.

    ```
    log sigma^2 = bound * tanh(raw / bound)
    ```

    The identity near zero, smooth everywhere, so gradients never vanish
    abruptly as with a hard clip; `exp(log sigma^2)` can then neither overflow
    nor reach zero, which keeps the KL and the reparameterised sample finite.
    """
    return bound * ops.tanh(raw / bound)


@keras.saving.register_keras_serializable(package="vae_tf")
class DenseEncoder(keras.Model):
    """A multilayer perceptron that maps images to `(z_mean, z_log_var)`.

    The image is flattened, passed through `hidden_units` dense layers and
    projected to the mean and (softly bounded) log-variance of a diagonal
    Gaussian over `latent_dim` dimensions.

    Args:
        latent_dim: size of the latent vector `z`.
        hidden_units: widths of the hidden layers, input side first.
        activation: activation of the hidden layers.
        log_var_bound: `z_log_var` is kept in `(-log_var_bound, log_var_bound)`.
        **kwargs: passed to `keras.Model` (e.g. `name`).

    Call arguments:
        inputs: images, shape `(batch, height, width, channels)`.

    Returns:
        `(z_mean, z_log_var)`, each of shape `(batch, latent_dim)`.

    Example:

    >>> encoder = vae_tf.DenseEncoder(latent_dim=32, hidden_units=(512, 256))
    >>> z_mean, z_log_var = encoder(images)
    """

    def __init__(
        self,
        latent_dim: int,
        hidden_units: tuple = (512, 256),
        activation: str = "relu",
        log_var_bound: float = 10.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        latent_dim = positive_int("latent_dim", latent_dim)
        hidden_units = positive_ints("hidden_units", hidden_units)
        if not log_var_bound > 0:
            raise ValueError(
                "log_var_bound must be positive. Received: "
                f"log_var_bound={log_var_bound!r}"
            )
        self.latent_dim = latent_dim
        self.hidden_units = hidden_units
        self.activation = activation
        self.log_var_bound = float(log_var_bound)
        self.flatten = layers.Flatten()
        self.hidden = [
            layers.Dense(units, activation=activation, name=f"hidden_{i}")
            for i, units in enumerate(hidden_units)
        ]
        self.posterior = layers.Dense(2 * latent_dim, name="posterior")

    def latent_shape(self, image_shape) -> tuple:
        """Shape of `z` for one image: `(latent_dim,)` whatever the image size."""
        return (self.latent_dim,)

    def call(self, inputs, training=False):
        h = self.flatten(inputs)  # (batch, height * width * channels)
        for layer in self.hidden:
            h = layer(h)  # (batch, units)
        z_mean, raw_log_var = ops.split(self.posterior(h), 2, axis=-1)
        z_log_var = bound_log_var(raw_log_var, self.log_var_bound)
        return z_mean, z_log_var  # (batch, latent_dim) each

    def get_config(self):
        config = super().get_config()
        config.update(
            latent_dim=self.latent_dim,
            hidden_units=list(self.hidden_units),
            activation=self.activation,
            log_var_bound=self.log_var_bound,
        )
        return config


@keras.saving.register_keras_serializable(package="vae_tf")
class ResidualBlock(keras.layers.Layer):
    """`x + conv(act(conv(act(x))))`: two 3x3 convolutions on a skip path.

    The second convolution starts at zero, so a new block is the identity
    and deep stacks train as easily as shallow ones.

    Args:
        filters: channels of the input and output.
        activation: activation before each convolution.
    """

    def __init__(self, filters: int, activation: str = "gelu", **kwargs):
        super().__init__(**kwargs)
        self.filters = positive_int("filters", filters)
        self.activation = activation
        self.act = layers.Activation(activation)
        self.conv1 = layers.Conv2D(filters, 3, padding="same")
        self.conv2 = layers.Conv2D(
            filters, 3, padding="same", kernel_initializer="zeros"
        )

    def build(self, input_shape):
        self.conv1.build(input_shape)
        self.conv2.build((*input_shape[:-1], self.filters))

    def call(self, inputs):
        h = self.conv1(self.act(inputs))  # (batch, h, w, filters)
        return inputs + self.conv2(self.act(h))

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, activation=self.activation)
        return config


def resolution_stages(filters, residual_blocks: int, activation: str, upsample=False):
    """One stage per width: a stride-2 3x3 convolution, then residual blocks.

    Downsampling stages use `Conv2D` (layers `down_i`), upsampling stages
    `Conv2DTranspose` (layers `up_i`); residual blocks are `res_i_j`.

    Returns:
        A list of stages, each a list of layers to apply in order.
    """
    conv, prefix = (
        (layers.Conv2DTranspose, "up") if upsample else (layers.Conv2D, "down")
    )
    return [
        [
            conv(
                width,
                3,
                strides=2,
                padding="same",
                activation=activation,
                name=f"{prefix}_{i}",
            ),
            *[
                ResidualBlock(width, activation, name=f"res_{i}_{j}")
                for j in range(residual_blocks)
            ],
        ]
        for i, width in enumerate(filters)
    ]


@keras.saving.register_keras_serializable(package="vae_tf")
class ConvEncoder(keras.Model):
    """A convolutional encoder: stride-2 stages, then a Gaussian posterior.

    A 3x3 stem convolution, then one stage per entry of `filters`: a stride-2
    3x3 convolution to that width followed by `residual_blocks` residual
    blocks, so the image shrinks by `2 ** len(filters)`. The posterior is
    either

    - a vector (`latent_dim=N`): the feature map is flattened and projected
      to `2N` numbers; any image size works (`"same"` padding rounds up), or
    - a spatial map (`latent_channels=C`, *fully convolutional*): a 3x3
      convolution gives `(h / f, w / f, C)` means and log-variances, so one
      model encodes images of any size that is a multiple of the factor `f`.

    Args:
        latent_dim: size of a vector latent (exclusive with `latent_channels`).
        latent_channels: channels of a spatial latent map.
        filters: widths of the downsampling stages, input side first.
        residual_blocks: residual blocks after each downsampling.
        activation: activation of the hidden layers.
        log_var_bound: `z_log_var` is kept in `(-log_var_bound, log_var_bound)`.
        **kwargs: passed to `keras.Model`.

    Call arguments:
        inputs: images, shape `(batch, height, width, channels)`.

    Returns:
        `(z_mean, z_log_var)`, each `(batch, latent_dim)` or
        `(batch, height / f, width / f, latent_channels)`.

    Example:

    >>> encoder = vae_tf.ConvEncoder(latent_channels=8, filters=(64, 128))
    >>> z_mean, z_log_var = encoder(images)  # (batch, h/4, w/4, 8) each
    """

    def __init__(
        self,
        latent_dim: int | None = None,
        latent_channels: int | None = None,
        filters: tuple = (32, 64),
        residual_blocks: int = 0,
        activation: str = "gelu",
        log_var_bound: float = 10.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if (latent_dim is None) == (latent_channels is None):
            raise ValueError(
                "Give exactly one of latent_dim (a latent vector) and latent_channels "
                f"(a spatial latent map). Received: latent_dim={latent_dim!r}, "
                f"latent_channels={latent_channels!r}"
            )
        if latent_dim is not None:
            latent_dim = positive_int("latent_dim", latent_dim)
        else:
            latent_channels = positive_int("latent_channels", latent_channels)
        self.latent_dim = latent_dim
        self.latent_channels = latent_channels
        self.filters = positive_ints("filters", filters, "(32, 64)", 1)
        non_negative_int("residual_blocks", residual_blocks)
        self.residual_blocks = residual_blocks
        self.activation = activation
        self.log_var_bound = float(log_var_bound)
        self.factor = 2 ** len(self.filters)
        self.stem = layers.Conv2D(self.filters[0], 3, padding="same", name="stem")
        self.stages = resolution_stages(self.filters, residual_blocks, activation)
        self.head_activation = layers.Activation(activation)
        if latent_dim is not None:
            self.flatten = layers.Flatten()
            self.posterior = layers.Dense(2 * latent_dim, name="posterior")
        else:
            self.posterior = layers.Conv2D(
                2 * latent_channels, 3, padding="same", name="posterior"
            )

    def latent_shape(self, image_shape) -> tuple:
        """Shape of `z` for one image of `image_shape`, checking the size."""
        height, width = image_shape[0], image_shape[1]
        if self.latent_dim is not None:
            return (self.latent_dim,)
        if height is None or width is None:
            return (None, None, self.latent_channels)
        if height % self.factor or width % self.factor:
            raise ValueError(
                f"A fully convolutional encoder with {len(self.filters)} stride-2 "
                "stages "
                f"needs image sizes divisible by {self.factor}; pad or crop the "
                "images. "
                f"Received: image_shape={tuple(image_shape)}"
            )
        return (height // self.factor, width // self.factor, self.latent_channels)

    def call(self, inputs, training=False):
        h = self.stem(inputs)  # (batch, h, w, filters[0])
        for stage in self.stages:
            for layer in stage:
                h = layer(h)  # (batch, h / 2^i, w / 2^i, width)
        h = self.head_activation(h)
        if self.latent_dim is not None:
            h = self.flatten(h)  # (batch, h / f * w / f * filters[-1])
        z_mean, raw_log_var = ops.split(self.posterior(h), 2, axis=-1)
        return z_mean, bound_log_var(raw_log_var, self.log_var_bound)

    def get_config(self):
        config = super().get_config()
        config.update(
            latent_dim=self.latent_dim,
            latent_channels=self.latent_channels,
            filters=list(self.filters),
            residual_blocks=self.residual_blocks,
            activation=self.activation,
            log_var_bound=self.log_var_bound,
        )
        return config
