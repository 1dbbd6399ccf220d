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
from vae_tf._validation import (
    decoder_param_shape,
    non_negative_int,
    positive_int,
    positive_ints,
)
from vae_tf.decoders import ConvDecoder, DenseDecoder

__all__ = ["MaskedConv2D", "PixelCNNDecoder", "MADEDecoder"]


def generate_pixels(params_fn, batch, image_shape, sample_pixel, seed, dtype):
    """Draw images pixel by pixel in raster order with an autoregressive model.

    Args:
        params_fn: `x -> x_params`, every pixel's parameters from the pixels
            before it (one network pass).
        batch: number of images.
        image_shape: `(height, width, channels)`.
        sample_pixel: `(params (batch, 1, 1, P), seed) -> (batch, 1, 1, C)`.
        seed: an int, int tensor or `SeedGenerator`; pixel `i` draws with the
            stateless seed `base + [0, i + 1]`.
        dtype: the images' dtype.

    Returns:
        `(x, params_fn(x))` of the drawn images.
    """
    height, width, channels = image_shape
    base = _stateless_seed(seed)  # (2,) int32
    positions = tf.reshape(tf.eye(height * width, dtype=dtype), (-1, height, width, 1))

    def step(index, x):
        params = params_fn(x)
        row, col = index // width, index % width
        pixel = tf.slice(params, [0, row, col, 0], [-1, 1, 1, -1])
        pixel = tf.cast(pixel, tf.float32)  # the likelihood works in float32
        value = sample_pixel(pixel, base + tf.stack([0, index + 1]))
        where = tf.gather(positions, index)[None]  # (1, height, width, 1)
        return index + 1, x + where * ops.cast(value, dtype)  # the pixel was 0

    def scan():
        x0 = tf.zeros(tf.stack([batch, height, width, channels]), dtype)
        _, x = tf.while_loop(
            lambda index, _: index < height * width,
            step,
            (tf.constant(0), x0),
            maximum_iterations=height * width,
        )
        return x, params_fn(x)

    if tf.executing_eagerly():
        # One graph for the whole scan: eagerly, each of the height * width
        # steps would dispatch the network layer by layer from Python.
        return tf.function(scan, autograph=False)()
    return scan()


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
        dtype = self.compute_dtype  # bfloat16 / float16 under a mixed policy
        kernel = ops.cast(self.kernel, dtype) * ops.cast(self.mask, dtype)
        return ops.conv(inputs, kernel, padding="same") + ops.cast(self.bias, dtype)

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
        param_shape: `(height, width, params_per_pixel)` as for `ConvDecoder`
            (sizes `None` with a latent map: any size). (0.1's
            `output_channels` and `image_size` work until 0.3.)
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
        param_shape: tuple | None = None,
        latent_dim: int | None = None,
        latent_channels: int | None = None,
        conditioning_filters: tuple = (64, 32),
        filters: int = 32,
        num_layers: int = 4,
        activation: str = "gelu",
        output_channels: int | None = None,
        image_size: tuple | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        image_size, self.output_channels = decoder_param_shape(
            param_shape, output_channels, image_size, "PixelCNNDecoder"
        )
        self.filters = positive_int("filters", filters)
        self.num_layers = non_negative_int("num_layers", num_layers)
        self.activation = activation
        conditioning_filters = tuple(conditioning_filters)
        if conditioning_filters:
            height, width = image_size or (None, None)
            self.conditioning = ConvDecoder(
                (height, width, filters),
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
                    "latent vector: give latent_dim and the image size in "
                    f"param_shape. Received: latent_dim={latent_dim!r}, "
                    f"param_shape={param_shape!r}"
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
        height, width, _ = image_shape
        conditioning = self.condition(z)[:, :height, :width]
        return generate_pixels(
            lambda x: self.autoregress(x, conditioning),
            ops.shape(z)[0],
            image_shape,
            sample_pixel,
            seed,
            conditioning.dtype,
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            param_shape=list(self.param_shape),
            latent_dim=self.latent_dim,
            latent_channels=self.latent_channels,
            conditioning_filters=list(self.conditioning_filters),
            filters=self.filters,
            num_layers=self.num_layers,
            activation=self.activation,
        )
        return config


def _made_masks(num_pixels: int, hidden_units: tuple, seed: int = 0):
    """MADE connectivity masks (Germain et al. 2015) for raster-ordered pixels.

    Pixel `d` (0-based) has degree `d + 1`; hidden unit `k` gets a degree
    `m(k)` in `[1, num_pixels - 1]`, spread evenly and shuffled with `seed`.
    A unit sees the pixels with degree <= its own; pixel `d`'s output sees
    the units with degree < `d + 1`, so it depends on pixels `< d` only.

    Returns:
        The masks of each hidden layer (`(inputs, units)`, pixel-level rows)
        and of the output (`(units, num_pixels)`).
    """
    rng = np.random.default_rng(seed)
    degrees = [np.arange(1, num_pixels + 1)]
    for units in hidden_units:
        spread = np.arange(units) % max(1, num_pixels - 1) + 1
        degrees.append(rng.permutation(spread))
    masks = [
        (later[None, :] >= earlier[:, None]).astype(np.float32)
        for earlier, later in zip(degrees[:-1], degrees[1:])
    ]
    output = (degrees[0][None, :] > degrees[-1][:, None]).astype(np.float32)
    return masks, output


@keras.saving.register_keras_serializable(package="vae_tf")
class MADEDecoder(keras.Model):
    """A masked dense autoregressive decoder (MADE) conditioned on `z`.

    Every pixel's parameters come from *all* the pixels before it in raster
    order — a much longer reach than a few masked convolutions — through
    masked dense layers, with `z` added to each hidden layer by an unmasked
    dense projection:

    ```
    h_1 = act((M_1 * W_1) x + U_1 z),  ...,  params = (M_out * W_out) h_L + V z
    ```

    It is cheap (dense layers over the flattened image) and sees the whole
    past of each pixel, where a few masked convolutions see a neighbourhood.
    Same protocol as `PixelCNNDecoder`: called on `(z, x)` it scores,
    `generate` samples pixel by pixel.

    Args:
        param_shape: `(height, width, params_per_pixel)`.
        hidden_units: widths of the masked hidden layers.
        activation: hidden activation.
        mask_seed: seed of the hidden units' degrees (part of the model).
    """

    autoregressive = True

    def __init__(
        self,
        param_shape: tuple,
        hidden_units: tuple = (1024,),
        activation: str = "gelu",
        mask_seed: int = 0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.param_shape = positive_ints("param_shape", param_shape, "(28, 28, 1)", 3)
        self.hidden_units = positive_ints(
            "hidden_units", hidden_units, "(1024,)", min_length=1
        )
        self.activation = activation
        self.mask_seed = int(mask_seed)
        height, width, self.params_per_pixel = self.param_shape
        self.num_pixels = height * width
        self.act = layers.Activation(activation)

    def build(self, input_shape):
        z_shape, x_shape = input_shape
        channels = x_shape[-1]
        masks, output_mask = _made_masks(
            self.num_pixels, self.hidden_units, self.mask_seed
        )
        # Pixel-level masks to channel/parameter-level ones: every channel of
        # a pixel shares its degree.
        masks[0] = np.repeat(masks[0], channels, axis=0)
        output_mask = np.repeat(output_mask, self.params_per_pixel, axis=1)
        self.masks = masks
        self.output_mask = output_mask
        sizes = [self.num_pixels * channels, *self.hidden_units]
        self.kernels, self.biases, self.z_projections = [], [], []
        for i, (fan_in, units) in enumerate(zip(sizes[:-1], sizes[1:])):
            self.kernels.append(
                self.add_weight(
                    shape=(fan_in, units), initializer="glorot_uniform", name=f"w_{i}"
                )
            )
            self.biases.append(
                self.add_weight(shape=(units,), initializer="zeros", name=f"b_{i}")
            )
            projection = layers.Dense(units, use_bias=False, name=f"z_to_{i}")
            projection.build(z_shape)
            self.z_projections.append(projection)
        outputs = self.num_pixels * self.params_per_pixel
        self.output_kernel = self.add_weight(
            shape=(self.hidden_units[-1], outputs),
            initializer="glorot_uniform",
            name="w_out",
        )
        self.output_bias = self.add_weight(
            shape=(outputs,), initializer="zeros", name="b_out"
        )
        self.z_output = layers.Dense(outputs, name="z_to_out")
        self.z_output.build(z_shape)
        self.built = True

    def _params(self, z, x):
        batch = ops.shape(x)[0]
        h = ops.reshape(x * 2.0 - 1.0, (batch, -1))  # pixel-major, channels inside
        for kernel, bias, mask, projection in zip(
            self.kernels, self.biases, self.masks, self.z_projections
        ):
            h = self.act(ops.matmul(h, kernel * mask) + bias + projection(z))
        out = ops.matmul(h, self.output_kernel * self.output_mask) + self.output_bias
        out = out + self.z_output(z)
        return ops.reshape(out, (batch, *self.param_shape))

    def call(self, inputs, training=False):
        z, x = inputs
        z = ops.reshape(z, (ops.shape(z)[0], -1))
        return self._params(z, ops.cast(x, z.dtype))

    def generate(self, z, sample_pixel, image_shape, seed=None):
        """Draw images pixel by pixel; as `PixelCNNDecoder.generate`."""
        z = ops.reshape(z, (ops.shape(z)[0], -1))
        return generate_pixels(
            lambda x: self._params(z, x),
            ops.shape(z)[0],
            image_shape,
            sample_pixel,
            seed,
            z.dtype,
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            param_shape=list(self.param_shape),
            hidden_units=list(self.hidden_units),
            activation=self.activation,
            mask_seed=self.mask_seed,
        )
        return config
