"""Lossless compression with a VAE: bits-back coding with ANS (BB-ANS).

A VAE gives every image a code length of about its negative ELBO, but only
if the bits spent on the latent are partly got back. Bits-back coding
(Townsend, Bird and Barber 2019, arXiv:1901.04866) does it with a stack
coder: to add a batch of images `x` to the stack,

1. pop `z` from the stack under the (discretised) posterior `q(z | x)`:
   decoding with a distribution *takes* `-log2 q(z | x)` bits off the stack,
2. push `x` under the likelihood `p(x | z)`: `-log2 p(x | z)` bits,
3. push `z` under the prior `p(z)`: `-log2 p(z)` bits.

Net, each image adds `-log2 p(x | z) - log2 p(z) + log2 q(z | x)` bits: a
one-sample estimate of the negative ELBO. The receiver runs the steps
backwards: pop `z` under the prior, pop `x` under the likelihood, push `z`
back under the posterior it can now compute from `x`, which returns the
stack to what it was. At the end the receiver finds the stack's first words
again, a check that the file decoded as it was written.

This holds only if the popped `z` are samples of `q(z | x)`, which needs two
things.

Enough bits to pop. A batch pops its images' posterior entropy at the latent
bins (about `log2(sigma / bin * sqrt(2 pi e))` bits a latent) before it
pushes anything. Popping from a stack that runs dry still decodes exactly,
but gives latents from the bins' far tails, and the images then cost many
times their ELBO (a 32x32x3 image with 1,024 latents pops about 11,700
bits). So the stack starts from fixed pseudo-random seed words, as many as
the first image pops (`seed_words`, chosen by the encoder and recorded in
the file): the initial-bits overhead, paid once per file. Then the encoder
chooses each batch's size from the bits the stack holds: the most images
whose posterior entropy, times 1.25, the stack covers, from 1 up to
`batch_size`; with fixed-point networks, which run a batch in chunks of
`FixedPointNetwork.CHUNK` images (XLA compiles whole chunks only), rounded
down to a whole number of chunks when it holds one, but for the last batch.
The encoder's posteriors are the same for any batch grouping, so they are
computed ahead, in a background thread, while the coder works. It pushes
the sizes last, each uniform over `[1, batch_size]` (about 9 bits a
batch); the receiver pops them first. Files written before this
(`schedule` 0) used batches of 1, 2, 4, ... images and decode as they
were written.

Posterior tails. The entropy coder gives every symbol in a model's range at
least one quantum of probability (`2**-24`), so a posterior coded over the
whole latent range (16,385 bins) puts about 0.1% of its pops at any bin,
hundreds of standard deviations out: with 1,024 latents nearly every image
gets one such latent and pays for it in pixels. So each latent is coded in
a window of `latent_window` posterior standard deviations around its
rounded posterior mean (half-widths from a fixed table, one coder model per
half-width, coded in order of half-width); the prior still sees the bins on
the whole range. Files from before the window (`latent_window` 0) decode
as they were written.

The entropy coder is `constriction`'s `AnsCoder`. The latents are coded
with `QuantizedGaussian` models (bins of width `2**-latent_bits` over
`[-latent_range, latent_range]`); the pixels with the distributions the
model's likelihood gives (`Likelihood.push_images` / `pop_images`, e.g. one
`Bernoulli` symbol per binary pixel, or pixel by pixel for the
`LocalAutoregressiveGaussian`). The codec itself holds no likelihood maths:
a new likelihood becomes codable by implementing those two methods.

Sender and receiver must compute bit-identical distributions, on whatever
machines they run. By default (`arithmetic="fixed-point"`) the posterior
and the decoder run in exact fixed point (`compression.fixed_point`: the
same bits for any thread count, CPU, oneDNN or XLA setting, batch grouping
or process), the posterior's scales and the likelihood's probabilities come
from `vae_tf.exact`'s elementary functions (correctly rounded operations
only), and `constriction` turns these equal parameters into equal
fixed-point probabilities. `arithmetic="float"` runs the networks in
TensorFlow's float32, as every file was written before the setting: faster, but
such a file decodes only where the networks compute the same bits (the same
machine, TensorFlow build and thread settings). The file records which
arithmetic wrote it.
"""

import collections
import concurrent.futures
import contextlib
import math

import constriction
import numpy as np
import tensorflow as tf

from vae_tf import exact
from vae_tf.compression import container
from vae_tf.compression.codec import ARITHMETICS, Codec
from vae_tf.compression.fixed_point import FixedPointNetwork
from vae_tf.images import MAX_PIXELS

__all__ = ["BitsBackCodec"]

_SEED = 0x5EED
_BIT = constriction.stream.model.Uniform(2)


class BitsBackCodec(Codec):
    """Code batches of images with a trained VAE, losslessly, near its -ELBO.

    Args:
        model: a trained, built model that codes losslessly
            (`"lossless" in model.coding`: a `vae_tf.VAE` with a likelihood
            that can code, `Bernoulli` or `LocalAutoregressiveGaussian`).
        latent_bits: latent bins are `2**-latent_bits` wide.
        latent_range: latents are coded on `[-latent_range, latent_range]`.
        latent_window: each latent's posterior is coded within this many
            of its standard deviations of its mean (0: over the whole
            range, as files from before the setting).
        batch_size: the largest batch coded at once.
        seed_words: 32-bit words the stack starts from; `None`: as many as
            the first image pops, chosen for each file and recorded in it.
        arithmetic: `"fixed-point"` (files decode on any machine: the
            networks in exact fixed point with 16-bit products),
            `"fixed-point-v1"` (the same guarantee, the first fixed point:
            products of the activations on the whole grid, in float64;
            slower where XLA runs; its files) or `"float"` (the
            networks in float32: decode where they were written; files from
            before the setting).
        grey_flags: 1: a colour model also takes grey images (`(h, w)` or
            `(h, w, 1)`), codes them as RGB with three equal channels and
            gives them back grey, from one bit an image in the stream; 0:
            colour images only (files from before the setting); `None`: 1
            for a colour model, 0 for a grey one.
        schedule: how batches are sized: 1, from the bits the stack holds
            (the module docstring); 0, 1, 2, 4, ... images (files from
            before the setting).

    Raises:
        NotSupportedError: (a `ValueError`) if `model` cannot code losslessly.
        ValueError: for an unbuilt model or settings out of range.

    Example:

    >>> codec = BitsBackCodec(model)
    >>> data = codec.compress(images)         # uint8 (N, 28, 28, 1) -> bytes
    >>> np.array_equal(BitsBackCodec.decompress_bytes(model, data), images)
    True
    """

    KIND = container.LOSSLESS
    PARAM_BOUNDS = {
        "latent_bits": (4, 16),
        "latent_range": (1, 64),
        "latent_window": (0, 64),
        "batch_size": (1, 1 << 16),
        "seed_words": (1, 1 << 16),
        "arithmetic": (0, max(ARITHMETICS.values())),
        "schedule": (0, 1),
        "grey_flags": (0, 1),
    }
    # Files written before these settings existed used float arithmetic,
    # batches of 1, 2, 4, ... images and posteriors over the whole range.
    PARAM_DEFAULTS = {
        "arithmetic": ARITHMETICS["float"],
        "schedule": 0,
        "latent_window": 0,
        "grey_flags": 0,
    }
    SCHEDULES = {"doubling": 0, "adaptive": 1}
    # A batch (and the seed) covers 1.25 times its images' posterior entropy,
    # and SPARE_BITS more.
    SAFETY = 1.25
    SPARE_BITS = 64

    def __init__(
        self,
        model,
        latent_bits: int = 10,
        latent_range: int = 8,
        latent_window: int = 5,
        batch_size: int = 500,
        seed_words: int | None = None,
        arithmetic: str | int = "fixed-point",
        schedule: int = 1,
        grey_flags: int | None = None,
    ):
        model.check_coding("lossless")
        if not model.built or model.image_shape is None:
            raise ValueError("The model must be built (trained or loaded) first.")
        settings = dict(
            latent_bits=latent_bits,
            latent_range=latent_range,
            latent_window=latent_window,
            batch_size=batch_size,
            seed_words=seed_words,
            arithmetic=self.arithmetic_code(arithmetic),
            schedule=schedule,
            grey_flags=int(model.image_shape[-1] == 3)
            if grey_flags is None
            else grey_flags,
        )
        for key, (low, high) in self.PARAM_BOUNDS.items():
            value = settings[key]
            if key == "seed_words" and value is None:
                continue  # chosen for each file by `encode`
            if not isinstance(value, int) or not low <= value <= high:
                raise ValueError(
                    f"{key} must be an integer from {low} to {high}. Received: "
                    f"{key}={value!r}"
                )
        self.model = model
        self.settings = settings
        self.image_shape = tuple(model.image_shape)
        self.channels = self.image_shape[-1]
        self.latent_shape = tuple(model.latent_shape)
        self.latent_size = math.prod(self.latent_shape)
        self.fingerprint = container.model_fingerprint(model)
        if self.arithmetic != "float":
            self._posterior = self.fixed_point_network(
                "posterior",
                model.posterior,
                [tf.TensorSpec([None, *self.image_shape])],
            )
            self._decode = self.fixed_point_network(
                "decoder", model.decoder, [tf.TensorSpec([None, *self.latent_shape])]
            )
        else:
            # No AutoGraph: nothing to convert, and it finds a lambda by
            # parsing the source file.
            self._posterior = tf.function(
                lambda x: model.posterior(x), reduce_retracing=True, autograph=False
            )
            self._decode = tf.function(
                lambda z: model.decoder(z), reduce_retracing=True, autograph=False
            )
        self._scale = float(2**latent_bits)
        limit = latent_range * 2**latent_bits
        self._limit = limit
        self._latent_model = constriction.stream.model.QuantizedGaussian(-limit, limit)
        self._prior = constriction.stream.model.QuantizedGaussian(
            -limit, limit, 0.0, self._scale
        )
        # Window half-widths in bins: about 2**(k/4) (19% apart), up to the range.
        steps = np.unique(np.rint(2.0 ** (np.arange(4 * limit.bit_length()) / 4)))
        steps = steps.astype(np.int64)
        self._half_widths = np.append(steps[steps < limit], limit)
        self._window_models = {}

    # The doubling schedule of files written before the adaptive one.

    def batches(self, num_images: int) -> list:
        """`(start, stop)` of each batch of the doubling schedule (files
        with `schedule` 0): 1, 2, 4, ... images, then `batch_size`."""
        bounds, start, size = [], 0, 1
        while start < num_images:
            stop = min(num_images, start + size)
            bounds.append((start, stop))
            start, size = stop, min(2 * size, self.settings["batch_size"])
        return bounds

    def _seed(self, num_words: int) -> np.ndarray:
        words = np.random.default_rng(_SEED).integers(
            0, 2**32, num_words, dtype=np.uint32
        )
        words[-1] |= np.uint32(1 << 31)  # an unsealed stack ends in a non-zero word
        return words

    # The network side: posteriors and likelihood parameters, as float64.

    @contextlib.contextmanager
    def _job(self, count: int):
        """Within: a job of `count` tiles, announced to the fixed-point
        networks (each runs once per tile): a long one runs through XLA
        from its first chunk. No bit changes."""
        if self.arithmetic == "float":
            yield
            return
        with self._posterior.expecting(count), self._decode.expecting(count):
            yield

    def _model_inputs(self, images: np.ndarray) -> np.ndarray:
        return images.astype(np.float32) / 255.0

    def _posterior_bins(self, images: np.ndarray):
        """Posterior means and scales of each latent, in bins, flattened."""
        z_mean, z_log_var = self._posterior(self._model_inputs(images))
        mean = np.asarray(z_mean, np.float64).reshape(len(images), -1) * self._scale
        log_var = np.asarray(z_log_var, np.float64).reshape(len(images), -1)
        std = exact.exp(0.5 * log_var)
        std = np.maximum(std * self._scale, 0.05)
        return mean.ravel(), std.ravel()

    @staticmethod
    def entropy_bits(std: np.ndarray) -> np.ndarray:
        """About the bits popping a latent takes: the entropy of a Gaussian of
        `std` (in bins) on unit bins, at least 0. For choosing batch sizes
        only: the receiver never computes it."""
        return np.maximum(0.0, np.log2(std * math.sqrt(2 * math.pi * math.e)))

    def pop_bits(self, images) -> np.ndarray:
        """About the bits popping each image's latents takes off the stack
        (its posterior entropy at the bins, `entropy_bits`): what the initial
        bits and each batch are sized by. `images`: uint8 `(N, *image_shape)`.

        Returns:
            float `(N,)`, in bits.
        """
        _, std = self._posterior_bins(np.asarray(images))
        return self.entropy_bits(std).reshape(len(images), -1).sum(axis=1)

    def _windows(self, mean: np.ndarray, std: np.ndarray):
        """Each latent's window: its centre bin, half-width (from the table)
        and the posterior mean relative to the centre. Exact float64
        operations and comparisons only, so both sides agree on any machine."""
        widest = len(self._half_widths) - 1
        wanted = self.settings["latent_window"] * std
        half = self._half_widths[
            np.minimum(np.searchsorted(self._half_widths, wanted), widest)
        ]
        centre = np.clip(np.rint(mean), half - self._limit, self._limit - half)
        return centre.astype(np.int64), half, mean - centre

    def _window_model(self, half: int):
        if half not in self._window_models:
            self._window_models[half] = constriction.stream.model.QuantizedGaussian(
                -half, half
            )
        return self._window_models[half]

    def _pop_latents(self, ans, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
        """Pop latent bins under the posterior (`mean`, `std` in bins)."""
        if self.settings["latent_window"] == 0:
            return ans.decode(self._latent_model, mean, std)
        centre, half, offset = self._windows(mean, std)
        z_bins = np.empty(len(mean), np.int32)
        for width in np.unique(half):  # narrowest first; `_push_latents` reverses
            where = np.flatnonzero(half == width)
            symbols = ans.decode(
                self._window_model(int(width)), offset[where], std[where]
            )
            z_bins[where] = centre[where] + symbols
        return z_bins

    def _push_latents(self, ans, z_bins: np.ndarray, mean, std):
        """Push latent bins under the posterior: the reverse of `_pop_latents`."""
        if self.settings["latent_window"] == 0:
            ans.encode_reverse(z_bins, self._latent_model, mean, std)
            return
        centre, half, offset = self._windows(mean, std)
        for width in np.unique(half)[::-1]:
            where = np.flatnonzero(half == width)
            symbols = (z_bins[where] - centre[where]).astype(np.int32)
            if np.any(np.abs(symbols) > width):
                raise container.CorruptFileError(
                    "A decoded latent lies outside its posterior's window. "
                    f"{self.mismatch_advice()}"
                )
            ans.encode_reverse(
                symbols, self._window_model(int(width)), offset[where], std[where]
            )

    def _params(self, z_bins: np.ndarray, count: int) -> np.ndarray:
        # Whole bins of 2**-latent_bits: exact in float32 and on the grid.
        z = (z_bins.astype(np.float32) / np.float32(self._scale)).reshape(
            count, *self.latent_shape
        )
        return np.asarray(self._decode(z))

    # Public API.

    def check_images(self, images) -> list:
        """`Codec.check_images` (grey images replicated to RGB for a colour
        model with `grey_flags`), and the likelihood's check that it can code
        them (e.g. binary pixels for a Bernoulli model)."""
        checked = super().check_images(self._replicate_grey(images)[0])
        for image in checked:
            self.model.likelihood.check_codable(image[None])
        return checked

    def tile_regions(self, sizes) -> np.ndarray:
        """The coded `(height, width)` of each tile of images of `sizes`
        `(N, 2)`, in coding order (image by image, its tiles row by row)."""
        tile_h, tile_w = self.image_shape[:2]
        regions = [
            (min(tile_h, height - top), min(tile_w, width - left))
            for height, width in np.asarray(sizes).reshape(-1, 2)
            for top in range(0, int(height), tile_h)
            for left in range(0, int(width), tile_w)
        ]
        return np.array(regions, np.int64).reshape(-1, 2)

    def tiles(self, images) -> tuple:
        """The model-sized tiles that cover each image, row by row.

        An image of the model's size is one tile; a larger or smaller one is
        cut into tiles of the model's size, those past its right and bottom
        edges padded with 0, which is not coded (`Likelihood.push_images`'s
        `sizes`).

        Returns:
            `(tiles, regions)`: uint8 `(T, *image_shape)` and the coded
            `(height, width)` of each tile, `(T, 2)`, or `None` when every
            tile is whole.
        """
        tile_h, tile_w = self.image_shape[:2]
        tiles = []
        for image in images:
            height, width = image.shape[:2]
            for top in range(0, height, tile_h):
                for left in range(0, width, tile_w):
                    piece = image[top : top + tile_h, left : left + tile_w]
                    tile = np.zeros(self.image_shape, np.uint8)
                    tile[: piece.shape[0], : piece.shape[1]] = piece
                    tiles.append(tile)
        regions = self.tile_regions([image.shape[:2] for image in images])
        whole = bool(np.all(regions == (tile_h, tile_w)))
        return np.stack(tiles), None if whole else regions

    def _untile(self, tiles, sizes) -> list:
        """The images of `sizes` `(N, 2)` from their `tiles` (`tiles`' order)."""
        tile_h, tile_w = self.image_shape[:2]
        images, index = [], 0
        for height, width in sizes:
            image = np.empty((height, width, self.channels), np.uint8)
            for top in range(0, height, tile_h):
                for left in range(0, width, tile_w):
                    piece = image[top : top + tile_h, left : left + tile_w]
                    piece[...] = tiles[index][: piece.shape[0], : piece.shape[1]]
                    index += 1
            images.append(image)
        return images

    def encode(self, images, progress=None) -> container.Encoded:
        """Code `images` (uint8 `(N, *image_shape)`, or a list of images of
        any sizes, coded as model-sized tiles: `tiles`; for a colour model
        with `grey_flags`, grey images too); `progress(count)` is called
        after each batch with its count of tiles.

        Returns:
            `container.Encoded`: the payload words, the sizes, and `stats`
            with `seed_bits` (the initial bits), `payload_bits`, `net_bits`
            (payload minus seed: what the images cost) and the net rate in
            bits per dimension, `bits_per_dim`.
        """
        images, grey = self._replicate_grey(images)
        images = self.check_images(images)
        tiles, regions = self.tiles(images)
        if regions is not None and self.settings["schedule"] == 0:
            raise ValueError(
                "Images of other sizes than the model's are coded as tiles, with the "
                "adaptive schedule only (schedule=1)."
            )
        with self._job(len(tiles)), _Posteriors(self, tiles) as posterior:
            return self._encode(images, grey, tiles, regions, posterior, progress)

    def _encode(
        self, images, grey, tiles, regions, posterior, progress
    ) -> container.Encoded:
        """`encode` of checked `images` as `tiles`, with their `posterior`."""
        adaptive = self.settings["schedule"] == self.SCHEDULES["adaptive"]
        settings = dict(self.settings)
        if settings["seed_words"] is None:
            _, std = posterior.ahead(0, 1)
            bits = self.SAFETY * self.entropy_bits(std).sum() + self.SPARE_BITS
            settings["seed_words"] = min(
                max(1, math.ceil(bits / 32)), self.PARAM_BOUNDS["seed_words"][1]
            )
        seed = self._seed(settings["seed_words"])
        ans = constriction.stream.stack.AnsCoder(seed)
        doubling = iter(self.batches(len(tiles)))
        start, sizes = 0, []
        while start < len(tiles):
            if adaptive:
                count = self._batch_size(ans.num_bits(), posterior, start)
            else:
                first, stop = next(doubling)
                count = stop - first
            batch = tiles[start : start + count]
            mean, std = posterior.batch(start, count)
            z_bins = self._pop_latents(ans, mean, std)
            x_params = self._params(z_bins, count)
            coded = None if regions is None else regions[start : start + count]
            self.model.likelihood.push_images(ans, batch, x_params, coded)
            ans.encode_reverse(z_bins, self._prior)
            sizes.append(count)
            start += count
            if progress is not None:
                progress(count)
        if adaptive and self.settings["batch_size"] > 1:  # popped first
            ans.encode_reverse(np.array(sizes, np.int32) - 1, self._size_model)
        if self.settings["grey_flags"]:  # popped before the sizes
            ans.encode_reverse(grey.astype(np.int32), _BIT)
        payload = ans.get_compressed()
        seed_bits = 32 * len(seed)
        payload_bits = 32 * len(payload)
        stats = {
            "seed_bits": seed_bits,
            "payload_bits": payload_bits,
            "net_bits": payload_bits - seed_bits,
            "bits_per_dim": (payload_bits - seed_bits)
            / sum(image.size for image in images),
        }
        sizes = np.array([image.shape[:2] for image in images], np.int64)
        return container.Encoded(payload, sizes, stats, settings)

    def _batch_size(self, stack_bits: int, posterior, start: int) -> int:
        """The next adaptive batch: the most tiles from `start` whose posterior
        entropy the stack's bits cover (at least 1); with fixed-point
        networks, rounded down to a multiple of `FixedPointNetwork.CHUNK`
        when it holds one, but for the last batch, so that the decoder
        network runs whole chunks (the class's chunk, not a network's: the
        file does not depend on how the networks are run). This changes the
        file's batches, so its bits, and decodes as any adaptive schedule."""
        _, std = posterior.ahead(start, self.settings["batch_size"])
        per_tile = self.entropy_bits(std).reshape(-1, self.latent_size).sum(axis=1)
        needed = self.SAFETY * np.cumsum(per_tile) + self.SPARE_BITS
        count = max(1, int(np.searchsorted(needed, stack_bits, side="right")))
        chunk = FixedPointNetwork.CHUNK
        if (
            self.arithmetic != "float"
            and count >= chunk
            and start + count < len(posterior.tiles)
        ):
            count -= count % chunk
        return count

    @property
    def _size_model(self):
        return constriction.stream.model.Uniform(self.settings["batch_size"])

    def _read_schedule(self, ans, num_images: int) -> list:
        """`(start, stop)` of each batch, from the sizes the encoder pushed last."""
        if self.settings["schedule"] != self.SCHEDULES["adaptive"]:
            return self.batches(num_images)
        bounds, start = [], 0
        while start < num_images:
            if self.settings["batch_size"] == 1:  # every batch one image
                count = 1
            else:
                count = int(ans.decode(self._size_model, 1)[0]) + 1
            if start + count > num_images:
                raise container.CorruptFileError(
                    "The payload's batch sizes add up to more images than the file "
                    f"holds ({num_images}). {self.mismatch_advice()}"
                )
            bounds.append((start, start + count))
            start += count
        return bounds

    def decode(self, payload, sizes, progress=None):
        """Decode the images of `sizes` (`(N, 2)`) from `payload` words: the
        reverse of `encode`. uint8 `(N, h, w, C)` when every image has the
        model's size (and its channels), else a list of `(h, w, C)` images
        (`C` = 1 for an image coded grey)."""
        sizes = np.asarray(sizes).reshape(-1, 2)
        self._check_sizes(sizes)
        regions = self.tile_regions(sizes)
        num_tiles = len(regions)
        if np.all(regions == self.image_shape[:2]):
            regions = None  # every tile whole: the images have the model's size
        payload = np.asarray(payload, dtype=np.uint32)
        if len(payload) == 0 or payload[-1] == 0:
            raise container.CorruptFileError(
                "The payload is not an ANS stack: it is empty or ends in a zero word."
            )
        ans = constriction.stream.stack.AnsCoder(payload)
        grey = np.zeros(len(sizes), bool)
        if self.settings["grey_flags"]:
            grey = ans.decode(_BIT, len(sizes)).astype(bool)
        tiles = np.empty((num_tiles, *self.image_shape), np.uint8)
        schedule = self._read_schedule(ans, num_tiles)
        with self._job(num_tiles):
            for start, stop in reversed(schedule):
                count = stop - start
                z_bins = ans.decode(self._prior, count * self.latent_size)
                x_params = self._params(z_bins, count)
                coded = None if regions is None else regions[start:stop]
                batch = self.model.likelihood.pop_images(ans, x_params, coded)
                mean, std = self._posterior_bins(batch)
                self._push_latents(ans, z_bins, mean, std)
                tiles[start:stop] = batch
                if progress is not None:
                    progress(count)
        # What is left must be the seed words (as many as the file records;
        # for a codec made without `seed_words`, as many as are left).
        left = ans.get_compressed()
        seed_words = self.settings["seed_words"] or max(1, len(left))
        if not np.array_equal(left, self._seed(seed_words)):
            raise container.CorruptFileError(
                "The payload did not decode to a consistent stream (the initial "
                f"words were not recovered). {self.mismatch_advice()}"
            )
        if regions is None and not grey.any():
            return tiles
        images = list(tiles) if regions is None else self._untile(tiles, sizes)
        for i in np.flatnonzero(grey):
            image = images[i]
            if not (np.all(image[..., :1] == image[..., 1:])):
                raise container.CorruptFileError(
                    f"Image {i} is marked grey but its channels differ. "
                    f"{self.mismatch_advice()}"
                )
            images[i] = image[..., :1]
        return images

    def _replicate_grey(self, images) -> tuple:
        """`images` with grey ones (`(h, w)` or `(h, w, 1)`) replicated to RGB
        for a codec with `grey_flags`, and which were grey (bool `(N,)`)."""
        if isinstance(images, np.ndarray) and images.ndim == 4:
            images = list(images)
        if not self.settings["grey_flags"] or not isinstance(images, (list, tuple)):
            count = len(images) if isinstance(images, (list, tuple)) else 0
            return images, np.zeros(count, bool)
        replicated, grey = [], []
        for image in images:
            image = np.asarray(image)
            flat = image.ndim == 2 or (image.ndim == 3 and image.shape[-1] == 1)
            if flat and image.size:
                image = np.repeat(image.reshape(*image.shape[:2], 1), 3, axis=-1)
            replicated.append(image)
            grey.append(flat)
        return replicated, np.array(grey, bool)

    def _check_sizes(self, sizes):
        if np.any(sizes < 1) or np.any(sizes.prod(axis=1) > MAX_PIXELS):
            raise container.CorruptFileError(
                "The file's image sizes are out of range (each side at least 1, at "
                f"most {MAX_PIXELS:,} pixels an image)."
            )
        if self.settings["schedule"] == 0 and np.any(
            sizes != np.array(self.image_shape[:2])
        ):
            raise container.CorruptFileError(
                f"The file's image sizes do not match the model's {self.image_shape}."
            )

    def check_file(self, parsed):
        self._check_sizes(np.asarray(parsed.sizes).reshape(-1, 2))


class _Posteriors:
    """The encoder's posteriors of `tiles`, in bins, computed ahead (to size
    the batches) and kept: fixed-point posteriors are the same for any batch
    grouping. Float ones are recomputed on each coded batch, as the receiver
    computes them.

    The blocks ahead (`batch_size` tiles each) are computed in a background
    thread, `IN_FLIGHT` at a time, while the coder works on the batches
    before them: the encoder network then runs alongside the coding's
    single-threaded numpy and constriction work. A block's posteriors depend
    on its tiles alone, so this changes no bit. Use as a context manager,
    which stops the thread's remaining work on leaving.
    """

    IN_FLIGHT = 2

    def __init__(self, codec: BitsBackCodec, tiles: np.ndarray):
        self.codec, self.tiles = codec, tiles
        self.mean = np.empty((len(tiles), codec.latent_size))
        self.std = np.empty((len(tiles), codec.latent_size))
        self.known = 0  # posteriors of tiles[:known] are computed
        self._pool = concurrent.futures.ThreadPoolExecutor(
            1, thread_name_prefix="bits-back-posteriors"
        )
        self._blocks = collections.deque()  # (start, stop, future), in order
        self._submitted = 0  # tiles[:_submitted] are computed or computing
        self._submit()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _submit(self):
        size = self.codec.settings["batch_size"]
        while len(self._blocks) < self.IN_FLIGHT and self._submitted < len(self.tiles):
            start, stop = self._submitted, min(self._submitted + size, len(self.tiles))
            future = self._pool.submit(
                self.codec._posterior_bins, self.tiles[start:stop]
            )
            self._blocks.append((start, stop, future))
            self._submitted = stop

    def ahead(self, start: int, count: int) -> tuple:
        stop = min(start + count, len(self.tiles))
        while stop > self.known:
            first, end, future = self._blocks.popleft()
            mean, std = future.result()
            self.mean[first:end] = mean.reshape(-1, self.codec.latent_size)
            self.std[first:end] = std.reshape(-1, self.codec.latent_size)
            self.known = end
            self._submit()
        return self.mean[start:stop].ravel(), self.std[start:stop].ravel()

    def batch(self, start: int, count: int) -> tuple:
        if self.codec.arithmetic == "float":
            return self.codec._posterior_bins(self.tiles[start : start + count])
        return self.ahead(start, count)
