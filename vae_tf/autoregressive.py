"""An autoregressive (PixelCNN) decoder: `p(x | z) = prod_i p(x_i | x_<i, z)`.

A decoder that sees the pixels before `x_i` (in raster order) can model
local detail by itself, which a factorised decoder leaves to `z`: the
likelihood improves (PixelVAE, Gulrajani et al. 2017, arXiv:1611.05013;
VLAE, Chen et al. 2017, arXiv:1611.02731) — and it is the classic setting
of posterior collapse, since such a decoder can do without `z` entirely and
the KL term then pushes every latent dimension to the prior.

Masked convolutions (van den Oord et al. 2016, arXiv:1601.06759) make one
pass compute every pixel's parameters from its predecessors: training and
scoring (the ELBO, IWAE) cost one network evaluation. Sampling is
sequential: one pass per pixel.
"""

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from vae_tf._random import _stateless_seed
from vae_tf._validation import non_negative_int, positive_int
from vae_tf.decoders import ConvDecoder, DenseDecoder

__all__ = ["MaskedConv2D", "PixelCNNDecoder"]


def _raster_mask(kernel_size: int, include_centre: bool) -> np.ndarray:
    """`(k, k, 1, 1)` mask of the positions before the centre in raster order."""
    mask = np.zeros((kernel_size, kernel_size, 1, 1), np.float32)
    centre = kernel_size // 2
    mask[:centre] = 1.0  # the rows above
    mask[centre, :centre] = 1.0  # the same row, to the left
    if include_centre:
        mask[centre, centre] = 1.0
    return mask


@keras.saving.register_keras_serializable(package="vae_tf")
class MaskedConv2D(layers.Layer):
    """A same-padded convolution that sees only earlier pixels (raster order).

    Mask `"A"` (the first layer) excludes the centre pixel, so the output at
    `i` depends on `x_<i` only; mask `"B"` (later layers) includes the centre,
    whose features already depend only on `x_<i`. All channels of a pixel
    are masked together: pixels are generated one at a time, channels jointly
    (a likelihood may still order them, as the logistic mixture does).

    Args:
        filters: output channels.
        kernel_size: an odd size.
        mask_type: `"A"` or `"B"`.
    """

    def __init__(self, filters: int, kernel_size: int, mask_type: str, **kwargs):
        super().__init__(**kwargs)
        if mask_type not in ("A", "B"):
            raise ValueError(f"mask_type must be 'A' or 'B'. Received: {mask_type!r}")
        if not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(
                "kernel_size must be an odd positive integer. Received: "
                f"{kernel_size!r}"
            )
        self.filters = positive_int("filters", filters)
        self.kernel_size = kernel_size
        self.mask_type = mask_type
        self.mask = _raster_mask(kernel_size, include_centre=mask_type == "B")

    def build(self, input_shape):
        k = self.kernel_size
        self.kernel = self.add_weight(
            shape=(k, k, input_shape[-1], self.filters),
            initializer="glorot_uniform",
            name="kernel",
        )
        self.bias = self.add_weight(
            shape=(self.filters,), initializer="zeros", name="bias"
        )

    def call(self, inputs):
        kernel = self.kernel * self.mask
        return ops.conv(inputs, kernel, padding="same") + self.bias

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters, kernel_size=self.kernel_size, mask_type=self.mask_type
        )
        return config


@keras.saving.register_keras_serializable(package="vae_tf")
class PixelCNNDecoder(keras.Model):
    """A PixelCNN conditioned on `z`: the VAE's autoregressive decoder.

    `z` goes through a `ConvDecoder` (or, with `conditioning_filters=()` and a
    latent vector, one dense layer) to a feature map `c(z)` of the image's
    size with `filters` channels. The image goes through a 7x7 mask-A
    convolution, then `num_layers` residual blocks of a 3x3 mask-B
    convolution, each adding `c(z)` (projected per block) before its
    activation, and a 1x1 convolution to the likelihood's parameters. The
    output at pixel `i` depends on `z` and `x_<i` only, so

    ```
    log p(x | z) = sum_i log p(x_i | params_i(x_<i, z))
    ```

    is exact for any per-pixel likelihood (Bernoulli, discretised ones).

    Called on `(z, x)` it returns every pixel's parameters (teacher forcing,
    for training and scoring); `vae_tf.VAE` uses `generate` to sample. With
    `num_layers=0` only the mask-A layer looks at `x`.

    Args:
        output_channels: parameters per pixel (`Likelihood.param_channels`).
        image_size: `(height, width)` for a vector latent, else `None`.
        latent_dim, latent_channels: the latent's form, as for `ConvDecoder`.
        conditioning_filters: widths of the conditioning `ConvDecoder`; `()`
            for a single dense layer from a latent vector (cheaper).
        filters: channels of the masked layers.
        num_layers: masked residual blocks after the first layer.
        activation: hidden activation.
    """

    autoregressive = True

    def __init__(
        self,
        output_channels: int,
        image_size: tuple | None = None,
        latent_dim: int | None = None,
        latent_channels: int | None = None,
        conditioning_filters: tuple = (64, 32),
        filters: int = 32,
        num_layers: int = 4,
        activation: str = "gelu",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.output_channels = positive_int("output_channels", output_channels)
        self.filters = positive_int("filters", filters)
        self.num_layers = non_negative_int("num_layers", num_layers)
        self.activation = activation
        conditioning_filters = tuple(conditioning_filters)
        if conditioning_filters:
            self.conditioning = ConvDecoder(
                filters,
                image_size=image_size,
                latent_dim=latent_dim,
                latent_channels=latent_channels,
                filters=conditioning_filters,
                activation=activation,
                name="conditioning",
            )
            self.image_size = self.conditioning.image_size
        else:
            if latent_dim is None or image_size is None:
                raise ValueError(
                    "conditioning_filters=() (a dense conditioning layer) needs a "
                    "latent vector: give latent_dim and image_size. Received: "
                    f"latent_dim={latent_dim!r}, image_size={image_size!r}"
                )
            self.image_size = tuple(image_size)
            self.conditioning = DenseDecoder(
                (*self.image_size, filters), hidden_units=(), name="conditioning"
            )
        self.latent_dim = latent_dim
        self.latent_channels = latent_channels
        self.conditioning_filters = conditioning_filters
        self.first = MaskedConv2D(filters, 7, "A", name="masked_a")
        self.first_condition = layers.Conv2D(filters, 1, name="condition_0")
        self.blocks = [
            (
                MaskedConv2D(filters, 3, "B", name=f"masked_b_{i}"),
                layers.Conv2D(filters, 1, name=f"condition_{i + 1}"),
            )
            for i in range(self.num_layers)
        ]
        self.act = layers.Activation(activation)
        self.params = layers.Conv2D(self.output_channels, 1, name="params")

    @property
    def param_shape(self) -> tuple:
        height, width = self.image_size or (None, None)
        return (height, width, self.output_channels)

    def build(self, input_shape):
        z_shape, x_shape = input_shape
        self.conditioning(keras.KerasTensor(z_shape))
        features = (*x_shape[:-1], self.filters)
        self.first.build(x_shape)
        self.first_condition.build(features)
        for masked, condition in self.blocks:
            masked.build(features)
            condition.build(features)
        self.params.build(features)
        self.built = True

    def condition(self, z, training=False):
        """`c(z)`: the conditioning feature map, `(batch, height, width, filters)`."""
        return self.conditioning(z, training=training)

    def autoregress(self, x, conditioning):
        """Every pixel's parameters from the pixels before it and `c(z)`."""
        h = self.first(x * 2.0 - 1.0) + self.first_condition(conditioning)
        for masked, condition in self.blocks:
            h = h + masked(self.act(h + condition(conditioning)))
        return self.params(self.act(h))  # (batch, height, width, output_channels)

    def call(self, inputs, training=False):
        z, x = inputs
        conditioning = self.condition(z, training=training)
        x = ops.cast(x, conditioning.dtype)
        return self.autoregress(x, conditioning[:, : x.shape[1], : x.shape[2]])

    def generate(self, z, sample_pixel, image_shape, seed=None):
        """Draw images pixel by pixel.

        Args:
            z: latents `(batch, *latent_shape)`.
            sample_pixel: `(params (batch, 1, 1, P), seed) -> (batch, 1, 1, C)`
                pixel values in [0, 1] (the likelihood's `sample`).
            image_shape: `(height, width, channels)`.
            seed: an int, int tensor or `SeedGenerator`.

        Returns:
            `(x, x_params)`: the drawn images `(batch, height, width, C)` and
            their parameters `(batch, height, width, P)`: each pixel's, given
            the pixels drawn before it.
        """
        height, width, channels = image_shape
        conditioning = self.condition(z)[:, :height, :width]
        batch = ops.shape(z)[0]
        base = _stateless_seed(seed)  # (2,) int32
        positions = tf.reshape(tf.eye(height * width), (-1, height, width, 1))

        def step(index, x):
            params = self.autoregress(x, conditioning)
            row, col = index // width, index % width
            pixel = tf.slice(params, [0, row, col, 0], [-1, 1, 1, -1])
            value = sample_pixel(pixel, base + tf.stack([0, index + 1]))
            where = tf.gather(positions, index)[None]  # (1, height, width, 1)
            return index + 1, x + where * value  # the pixel was 0 until now

        x0 = tf.zeros(tf.stack([batch, height, width, channels]), conditioning.dtype)
        _, x = tf.while_loop(
            lambda index, _: index < height * width,
            step,
            (tf.constant(0), x0),
            maximum_iterations=height * width,
        )
        return x, self.autoregress(x, conditioning)

    def get_config(self):
        config = super().get_config()
        config.update(
            output_channels=self.output_channels,
            image_size=None if self.image_size is None else list(self.image_size),
            latent_dim=self.latent_dim,
            latent_channels=self.latent_channels,
            conditioning_filters=list(self.conditioning_filters),
            filters=self.filters,
            num_layers=self.num_layers,
            activation=self.activation,
        )
        return config
