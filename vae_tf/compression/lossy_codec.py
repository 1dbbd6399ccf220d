"""The lossy codec: a `LossyVAE`'s rounded latents, range-coded under its prior.

Compressing an image (Ballé et al. 2017, arXiv:1611.01704):

1. pad it on the bottom and right (repeating the edge pixels) to a multiple of
   the model's downsampling factor, so a fully convolutional model takes any
   size; the true size goes in the file's header;
2. `y_hat = round(g_a(x))`, clipped to `[-latent_limit, latent_limit]`;
3. range-code every latent under the prior of its channel, a Gaussian
   discretised to unit bins (`constriction`'s `QuantizedGaussian`, exactly the
   probabilities `LossyVAE` trains against).

Decoding reverses the steps: range-decode `y_hat`, `x_hat = g_s(y_hat)`, crop,
round to 8 bits. The factorised prior does not depend on the image, so the
decoder's probabilities are the encoder's bit for bit (they come from the
stored weights only), and the file costs about `-log2 p(y_hat)` bits: the
rate the model reports, plus a few bytes per file.

With a scale hyperprior (Ballé et al. 2018) the side information `z_hat =
round(h_a(|y|))` of a batch of images is coded first, under the factorised
prior; then every latent of `y_hat` under a zero-mean `QuantizedGaussian`
whose scale `h_s(z_hat)` predicts, rounded to the nearest of the
`vae_tf.models.lossy.scale_table()` scales. The decoder decodes `z_hat`, runs `h_s`
on the same batch and gets the same scale indices. With the mean-scale
hyperprior (Minnen et al. 2018, arXiv:1809.02736), `h_s` predicts each
latent's mean `mu` too: the coder codes `round(y - mu)` under the zero-mean
Gaussian, and the decoder adds `mu` back, `y_hat = round(y - mu) + mu`.

What the decoder computes must come out the same on every machine: the
coding distributions (a scale index that flips at a table boundary loses
the rest of the stream) and the pixels (a value that rounds the other way
changes the image). With `arithmetic="fixed-point"` (the default) both do:

- the factorised prior's scales are `exp` of the stored float32 log-scales
  by `vae_tf.exact` (the same function everywhere), its means the stored
  float32 values;
- `h_s` runs in exact fixed point (`compression.fixed_point`: sums of
  integer multiples of a power-of-two grid, which no summation order,
  thread count, instruction set, oneDNN or XLA changes), and the scale index
  is `round((log_scale - log 0.11) / step)` of its grid output, with table
  and step from `vae_tf.exact`: correctly rounded operations only; a mean
  is its grid output, and `y_hat = round(y - mu) + mu` an exact sum;
- `g_s` runs in the same fixed point, and its grid output is rounded to 8
  bits in float64.

The encoder's side (`g_a`, `h_a`) may run in float: it only chooses the
symbols, which the file carries. The file records the arithmetic. Files
written with `arithmetic="float"` (and all files from before the setting)
take `h_s`'s and `g_s`'s float32 outputs: they decode with the TensorFlow
build and kind of CPU that encoded, the caveat every learned codec with a
hyperprior carries.
"""

import constriction
import numpy as np
import tensorflow as tf

from vae_tf import exact
from vae_tf.compression import container
from vae_tf.compression.codec import ARITHMETICS, Codec
from vae_tf.models.lossy import (
    SCALE_LEVELS,
    SCALE_MAX,
    SCALE_MIN,
    scale_indices,
    scale_table,
)

__all__ = ["LossyCodec"]

MAX_SIDE = container.MAX_SIDE


class LossyCodec(Codec):
    """Lossy coding of 8-bit images of any size with a trained `vae_tf.LossyVAE`.

    Args:
        model: a trained `LossyVAE`.
        latent_limit: rounded latents are clipped to `[-limit, limit]` (far
            outside what a trained model produces; it bounds the coder's
            alphabet).
        batch_size: images of one size encoded or decoded at once. The
            stream holds a batch's side information, then its latents, so
            the file records it and the decoder groups the same way.
        arithmetic: `"fixed-point"` (files decode to the same pixels on any
            machine: the networks in exact fixed point with 16-bit
            products), `"fixed-point-v1"` (the same guarantee, the first
            fixed point: products of the activations on the whole grid, in
            float64; slower where XLA runs; its files) or
            `"float"` (the networks in float32: decode where they were
            written; files from before the setting).

    Raises:
        NotSupportedError: (a `ValueError`) if `model` cannot code lossily.
        ValueError: for settings out of range or an unknown arithmetic.

    Example:

    ```python
    codec = LossyCodec(model)
    data = codec.compress([photo])            # bytes of a .vtfz file
    (decoded,) = LossyCodec.decompress_bytes(model, data)
    ```
    """

    KIND = container.LOSSY
    CODING = "Lossy"
    # The batch size sets the stream's layout (a group's side information,
    # then its latents), so the file records it.
    PARAM_BOUNDS = {
        "latent_limit": (1, 1 << 20),
        "batch_size": (1, 1 << 16),
        "arithmetic": (0, max(ARITHMETICS.values())),
    }
    # What files from before a setting was recorded were written with.
    PARAM_DEFAULTS = {"batch_size": 64, "arithmetic": ARITHMETICS["float"]}

    def __init__(
        self,
        model,
        latent_limit: int = 4096,
        batch_size: int = 64,
        arithmetic: str | int = "fixed-point",
    ):
        model.check_coding("lossy")
        low, high = self.PARAM_BOUNDS["latent_limit"]
        if not isinstance(latent_limit, int) or not low <= latent_limit <= high:
            raise ValueError(
                f"latent_limit must be an integer in [{low}, {high}]. Received: "
                f"latent_limit={latent_limit!r}"
            )
        low, high = self.PARAM_BOUNDS["batch_size"]
        if not isinstance(batch_size, int) or not low <= batch_size <= high:
            raise ValueError(
                f"batch_size must be an integer in [{low}, {high}]. Received: "
                f"batch_size={batch_size!r}"
            )
        self.model = model
        self.latent_limit = latent_limit
        self.batch_size = batch_size
        self.fingerprint = container.model_fingerprint(model)
        self.settings = {
            "latent_limit": latent_limit,
            "batch_size": batch_size,
            "arithmetic": self.arithmetic_code(arithmetic),
        }
        self._family = constriction.stream.model.QuantizedGaussian(
            -latent_limit, latent_limit
        )
        self.hyperprior = bool(model.hyperprior_channels)
        # The factorised prior: of y, or of z with a hyperprior.
        self._mean = np.asarray(model.prior.mean.numpy(), np.float64)  # (C,)
        if self.arithmetic == "float":
            self._std = np.asarray(model.prior.scale.numpy(), np.float64)  # (C,)
            self._scales = scale_table()
            return
        log_scale = np.asarray(model.prior.log_scale.numpy(), np.float64)
        self._std = np.maximum(exact.exp(log_scale), 0.11)  # as prior.scale
        self._log_min = exact.log(SCALE_MIN)
        self._log_step = (exact.log(SCALE_MAX) - self._log_min) / (SCALE_LEVELS - 1)
        levels = np.arange(SCALE_LEVELS)
        self._scales = exact.exp(self._log_min + levels * self._log_step)
        self._synthesis = self.fixed_point_network(
            "synthesis",
            model.synthesis,
            [tf.TensorSpec([None, None, None, model.latent_channels])],
        )
        if self.hyperprior:
            self._hyper_synthesis = self.fixed_point_network(
                "hyper_synthesis",
                model.hyper_synthesis,
                [tf.TensorSpec([None, None, None, model.hyperprior_channels])],
            )

    @property
    def channels(self) -> int:
        return self.model.channels

    def latent_shape(self, height: int, width: int) -> tuple:
        """The shape of one image's latents, `(h, w, M)`."""
        height, width = self._padded_size(height, width)
        f = 2**self.model.analysis.num_layers  # the analysis transform's stride
        return (height // f, width // f, self.model.latent_channels)

    def side_shape(self, height: int, width: int) -> tuple:
        """The shape of one image's side information `z`, `(h / 2, w / 2, C)`;
        `(0, 0, 0)` without a hyperprior."""
        if not self.hyperprior:
            return (0, 0, 0)
        h, w, _ = self.latent_shape(height, width)
        return (h // 2, w // 2, self.model.hyperprior_channels)

    def _groups(self, sizes):
        """Runs of consecutive images of one size, at most `batch_size` long."""
        start = 0
        while start < len(sizes):
            stop = start + 1
            while (
                stop < len(sizes)
                and stop - start < self.batch_size
                and tuple(sizes[stop]) == tuple(sizes[start])
            ):
                stop += 1
            yield start, stop
            start = stop

    def _padded_size(self, height: int, width: int) -> tuple:
        """`(height, width)` rounded up to multiples of the model's downsampling."""
        f = self.model.downsampling
        return -(-height // f) * f, -(-width // f) * f

    def _params(self, count: int):
        """Factorised-prior means and scales for `count` symbols in `(..., C)`
        order."""
        repeats = count // len(self._mean)
        return np.tile(self._mean, repeats), np.tile(self._std, repeats)

    def _symbols(self, values) -> np.ndarray:
        """`values` rounded and clipped to the coder's alphabet, int32."""
        limit = self.latent_limit
        return np.clip(np.round(values), -limit, limit).astype(np.int32)

    def _latent_scales(self, z_hat: np.ndarray) -> np.ndarray:
        """The table scale of every latent of `y` for a batch of `z_hat`."""
        return self._latent_distribution(z_hat)[1]

    def _latent_distribution(self, z_hat: np.ndarray) -> tuple:
        """`(mean, scale)` of every latent of `y` for a batch of `z_hat`,
        float64: the hyperprior's means (0 without `mean_scale`) and table
        scales."""
        channels = self.model.latent_channels
        if self.arithmetic == "float":
            mean, scales = self.model.latent_distribution(z_hat.astype(np.float32))
            mean = np.asarray(mean, np.float64)
            return mean, self._scales[scale_indices(np.asarray(scales))]
        # The log-scale on the grid, then correctly rounded operations only.
        out = self._hyper_synthesis(z_hat)
        if self.model.mean_scale:
            mean, log_scale = out[..., :channels], out[..., channels:]
        else:
            mean, log_scale = np.zeros_like(out), out
        t = (log_scale - self._log_min) / self._log_step
        index = np.clip(np.rint(t), 0, SCALE_LEVELS - 1).astype(np.int64)
        return mean, self._scales[index]

    def reconstruct(self, y_hat) -> np.ndarray:
        """The pixels the decoder gives for latents `y_hat` (`(N, h, w, M)`,
        as `latents` returns them): `g_s(y_hat)` in this codec's arithmetic,
        clipped to [0, 1] and rounded to uint8 `(N, H, W, C)` (the padded
        size)."""
        y_hat = np.asarray(y_hat)
        if self.arithmetic == "float":
            x_hat = self.model.synthesis(y_hat.astype(np.float32)).numpy()
        else:
            x_hat = self._synthesis(y_hat)
        return np.round(np.clip(x_hat, 0.0, 1.0) * 255.0).astype(np.uint8)

    def _code_groups(self, images):
        """Per group of one size: `(start, stop, symbols, z_hat, y_hat)`: the
        int32 symbols of `y` (`round(y - mu)`, clipped), those of the side
        information (None without a hyperprior), and the latents the
        decoder gets, `symbols + mu` (float64)."""
        sizes = [image.shape[:2] for image in images]
        for start, stop in self._groups(sizes):
            batch = self.model.pad(np.stack(images[start:stop])).astype(np.float32)
            y = np.asarray(self.model.analysis(batch / 255.0), np.float64)
            z_hat, mean = None, 0.0
            if self.hyperprior:
                z_hat = self._symbols(self.model.hyper_analysis(y).numpy())
                if self.model.mean_scale:
                    mean = self._latent_distribution(z_hat)[0]
            symbols = self._symbols(y - mean)
            yield start, stop, symbols, z_hat, symbols + mean

    def latents(self, images) -> list:
        """The latents `y_hat` of each image as the decoder gets them: the
        rounded, clipped latents (int32), or with the mean-scale hyperprior
        `round(y - mu) + mu` (float64)."""
        images = self.check_images(images)
        return [y for *_, y_hat in self._code_groups(images) for y in y_hat]

    def encode(self, images, progress=None) -> container.Encoded:
        """Code `images` (uint8 `(h, w, C)` each, any sizes); `progress(count)`
        is called after each group of images of one size.

        Per group: their `z_hat` (with a hyperprior), then their `y_hat`, in
        C order.

        Returns:
            `container.Encoded`: the payload words, the sizes `(N, 2)`, and
            `stats` with `payload_bits` and `bits_per_pixel` (of the payload).
        """
        images = self.check_images(images)
        encoder = constriction.stream.queue.RangeEncoder()
        for start, stop, symbols, z_hat, _ in self._code_groups(images):
            if z_hat is None:
                encoder.encode(
                    symbols.reshape(-1), self._family, *self._params(symbols.size)
                )
            else:
                encoder.encode(
                    z_hat.reshape(-1), self._family, *self._params(z_hat.size)
                )
                std = self._latent_scales(z_hat).reshape(-1)
                encoder.encode(
                    symbols.reshape(-1), self._family, np.zeros_like(std), std
                )
            if progress is not None:
                progress(stop - start)
        sizes = np.array([image.shape[:2] for image in images], np.int64)
        payload = encoder.get_compressed()
        stats = {
            "payload_bits": 32 * len(payload),
            "bits_per_pixel": 32 * len(payload) / int(np.prod(sizes, axis=1).sum()),
        }
        return container.Encoded(payload, sizes, stats)

    def decode(self, payload, sizes, progress=None) -> list:
        """Decode the images of `sizes` (`(N, 2)`) from `payload`: the reverse of
        `encode`. A list of uint8 `(h, w, C)` images."""
        payload = np.asarray(payload, dtype=np.uint32)
        decoder = constriction.stream.queue.RangeDecoder(payload)
        images = []
        for start, stop in self._groups(sizes):
            height, width = (int(v) for v in sizes[start])
            shape = (stop - start, *self.latent_shape(height, width))
            count = int(np.prod(shape))
            if self.hyperprior:
                side = (stop - start, *self.side_shape(height, width))
                z_hat = self._decode_symbols(
                    decoder, *self._params(int(np.prod(side)))
                ).reshape(side)
                mean, std = self._latent_distribution(z_hat)
                std = std.reshape(-1)
                y_hat = self._decode_symbols(decoder, np.zeros_like(std), std)
                if self.model.mean_scale:
                    y_hat = y_hat + mean.reshape(-1)
            else:
                y_hat = self._decode_symbols(decoder, *self._params(count))
            x_hat = self.reconstruct(y_hat.reshape(shape))
            images.extend(x_hat[:, :height, :width])
            if progress is not None:
                progress(stop - start)
        if not decoder.maybe_exhausted():
            raise container.CorruptFileError(
                f"The payload holds more data than its images. {self.mismatch_advice()}"
            )
        return images

    def _decode_symbols(self, decoder, means, stds):
        """The next symbols from `decoder`, one per `(mean, std)`; a stream
        the range coder finds invalid for them is a `CorruptFileError`."""
        try:
            return decoder.decode(self._family, means, stds)
        except AssertionError as error:  # constriction's invalid-data check
            raise container.CorruptFileError(
                "The payload did not decode: its data are invalid for the "
                f"probabilities this process computed. {self.mismatch_advice()}"
            ) from error

    def check_file(self, parsed):
        """The latents the file's sizes describe must be within the limit."""
        latents = sum(
            int(np.prod(self.latent_shape(int(h), int(w))))
            + int(np.prod(self.side_shape(int(h), int(w))))
            for h, w in parsed.sizes
        )
        if latents > container.MAX_VALUES:
            raise container.CorruptFileError(
                f"The file's sizes describe {latents} latents, more than "
                f"{container.MAX_VALUES}."
            )
