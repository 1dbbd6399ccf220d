"""Lossless bits-back coding and the .vtfz file format: round trips, rates, errors."""

import json
import struct
import threading
import zlib

import constriction
import keras
import numpy as np
import pytest
from PIL import Image

import vae_tf
from vae_tf import cli, presets
from vae_tf.compression import (
    BitsBackCodec,
    CorruptFileError,
    WrongModelError,
    bitsback,
    container,
)
from vae_tf.compression.files import compress_files, decompress_file
from vae_tf.compression.fixed_point import FixedPointNetwork


def small_8bit_vae(seed):
    likelihood = vae_tf.likelihoods.LocalAutoregressiveGaussian()
    return vae_tf.VAE(
        vae_tf.DenseEncoder(8, (64,)),
        vae_tf.DenseDecoder((28, 28, likelihood.param_channels(1)), (64,)),
        likelihood,
        seed=seed,
    )


@pytest.fixture(scope="module")
def mnist_uint8():
    train, _ = vae_tf.data.load_arrays("mnist", "train", source="bundled")
    test, _ = vae_tf.data.load_arrays("mnist", "test", source="bundled")
    return train, test


@pytest.fixture(scope="module")
def model_8bit(mnist_uint8):
    """An 8-bit VAE trained for an epoch: sharp enough to test real rates."""
    keras.utils.set_random_seed(0)
    train, _ = mnist_uint8
    model = small_8bit_vae(seed=0)
    model.compile(optimizer=keras.optimizers.Adam(2e-3))
    model.fit(train.astype("float32") / 255.0, batch_size=64, epochs=1, verbose=0)
    return model


@pytest.fixture(scope="module")
def binary_model():
    keras.utils.set_random_seed(0)
    model = vae_tf.VAE(
        vae_tf.DenseEncoder(8, (64,)),
        vae_tf.DenseDecoder((28, 28, 1), (64,)),
        vae_tf.Bernoulli("threshold"),
        seed=0,
    )
    model.build((None, 28, 28, 1))
    return model


@pytest.fixture(scope="module")
def small_file(model_8bit, mnist_uint8):
    return BitsBackCodec(model_8bit).compress(mnist_uint8[1][:3])


def negative_elbo_bits(model, images):
    reconstruction, kl = model.compute_terms(images.astype("float32") / 255.0, seed=0)
    return float(np.sum(reconstruction + kl)) / np.log(2.0)


def test_8bit_round_trip_is_bit_exact_and_costs_the_negative_elbo(
    model_8bit, mnist_uint8
):
    images = mnist_uint8[1][:300]
    codec = BitsBackCodec(model_8bit, batch_size=128)
    encoded = codec.encode(images)
    stats = encoded.stats
    decoded = codec.decode(encoded.payload, encoded.sizes)
    np.testing.assert_array_equal(encoded.sizes, np.tile([28, 28], (300, 1)))
    assert decoded.dtype == np.uint8
    np.testing.assert_array_equal(decoded, images)
    # The coded size is a one-sample estimate of the negative ELBO, with the
    # latent discretised to 2**-10 bins: within 1% on 300 images.
    assert stats["net_bits"] == pytest.approx(
        negative_elbo_bits(model_8bit, images), rel=0.01
    )
    # The seed covers what the first image pops: its posterior entropy at the
    # bins, with a margin.
    _, std = codec._posterior_bins(images[:1])
    first_pop = codec.pop_bits(images[:1])[0]
    # Against the entropy of a Gaussian on unit bins, computed here.
    assert first_pop == pytest.approx(
        np.maximum(0, np.log2(std * np.sqrt(2 * np.pi * np.e))).sum()
    )
    assert stats["payload_bits"] - stats["net_bits"] == stats["seed_bits"]
    assert first_pop < stats["seed_bits"] < 1.25 * first_pop + 96
    assert container.unpack(codec.pack(encoded)).params["seed_words"] == (
        stats["seed_bits"] // 32
    )
    assert stats["bits_per_dim"] < 8.0


def test_binary_round_trip_is_bit_exact_and_costs_the_negative_elbo(
    binary_model, mnist_uint8
):
    images = (mnist_uint8[1][:300] > 127).astype(np.uint8) * 255
    codec = BitsBackCodec(binary_model)
    data = codec.compress(images)
    np.testing.assert_array_equal(
        BitsBackCodec.decompress_bytes(binary_model, data), images
    )
    stats = codec.encode(images).stats
    assert stats["net_bits"] == pytest.approx(
        negative_elbo_bits(binary_model, images), rel=0.01
    )


@pytest.fixture(scope="module")
def trained_binary_model(mnist_uint8):
    """A Bernoulli VAE trained for an epoch: its posterior pops far more bits
    than an image costs (most of its 32 dimensions stay near the prior)."""
    keras.utils.set_random_seed(0)
    train, _ = mnist_uint8
    model = vae_tf.VAE(
        vae_tf.DenseEncoder(32, (256,)),
        vae_tf.DenseDecoder((28, 28, 1), (256,)),
        vae_tf.Bernoulli("dynamic"),
        seed=0,
    )
    model.compile(optimizer=keras.optimizers.Adam(2e-3))
    model.fit(train.astype("float32") / 255.0, batch_size=64, epochs=1, verbose=0)
    return model


def test_a_posterior_wider_than_an_image_costs_the_negative_elbo(
    trained_binary_model, mnist_uint8
):
    # Each batch pops its posterior's bits before pushing any: batches sized
    # 1, 2, 4, ... emptied the stack here, and the file took 3-4x the ELBO.
    images = vae_tf.data.binarize(mnist_uint8[1][:1000], seed=0)
    images = (images * 255).astype(np.uint8)
    codec = BitsBackCodec(trained_binary_model)
    encoded = codec.encode(images)
    np.testing.assert_array_equal(codec.decode(encoded.payload, encoded.sizes), images)
    elbo_bits = negative_elbo_bits(trained_binary_model, images)
    assert encoded.stats["net_bits"] == pytest.approx(elbo_bits, rel=0.02)


def digits_as_colour(digits, count):
    """32x32x3 images: three MNIST digits as the channels of each."""
    padded = np.pad(digits[: 3 * count, ..., 0], ((0, 0), (2, 2), (2, 2)))
    return np.stack([padded[0::3], padded[1::3], padded[2::3]], axis=-1)


@pytest.fixture(scope="module")
def colour_model(mnist_uint8):
    """The `cifar10-lossless` architecture (1,024 latents an image, each
    channel leaning on the earlier ones) trained briefly on digits as colour:
    its posterior pops about 10 times the bits an MNIST model's does."""
    keras.utils.set_random_seed(0)
    model = presets.get("cifar10-lossless").build_model(0)
    model.compile(optimizer=keras.optimizers.Adam(2e-3))
    train = digits_as_colour(mnist_uint8[0], 1000).astype("float32") / 255.0
    model.fit(train, batch_size=32, epochs=1, verbose=0)
    return model


def test_popped_latents_stay_within_their_posterior_window(colour_model, mnist_uint8):
    images = digits_as_colour(mnist_uint8[1], 20)
    windowed = BitsBackCodec(colour_model, arithmetic="float")
    whole_range = BitsBackCodec(colour_model, arithmetic="float", latent_window=0)
    words = np.random.default_rng(0).integers(1, 2**32, 40_000, dtype=np.uint32)

    def residuals(codec, mean, std):
        ans = constriction.stream.stack.AnsCoder(words)
        z_bins = codec._pop_latents(ans, mean, std)
        codec._push_latents(ans, z_bins, mean, std)  # and back: decodable
        np.testing.assert_array_equal(ans.get_compressed(), words)
        return (z_bins - mean) / std

    # Popped from random bits, the latents are posterior samples, none past
    # the window (5 standard deviations, widened to the next half-width).
    mean, std = windowed._posterior_bins(images)
    inside = residuals(windowed, mean, std)
    assert np.abs(inside).max() < 5 * 1.2 + 1
    assert np.std(inside) == pytest.approx(1.0, abs=0.05)
    # Narrow posteriors (10 bins: a tenth of cifar10-lossless's) over the
    # whole range: the coder's floor of one quantum per bin puts some of
    # 20,000 pops hundreds of standard deviations out; not in the window.
    mean = np.random.default_rng(1).normal(0, 1000, 20_000)
    std = np.full(20_000, 10.0)
    assert np.abs(residuals(whole_range, mean, std)).max() > 50
    assert np.abs(residuals(windowed, mean, std)).max() < 5 * 1.2 + 1


def test_a_colour_model_with_many_latents_costs_the_negative_elbo(
    colour_model, mnist_uint8
):
    # A 1,024-latent posterior pops about 10,000 bits an image: from a seed of
    # 32 words, and with batches sized by the bits earlier images popped, the
    # stack ran dry and the files took 3.6x the ELBO.
    images = digits_as_colour(mnist_uint8[1], 60)
    codec = BitsBackCodec(colour_model)
    encoded = codec.encode(images)
    np.testing.assert_array_equal(
        BitsBackCodec.decompress_bytes(colour_model, codec.pack(encoded)), images
    )
    assert encoded.stats["net_bits"] == pytest.approx(
        negative_elbo_bits(colour_model, images), rel=0.01
    )


def test_colour_files_of_any_size_come_back_bit_for_bit(colour_model, tmp_path):
    """`vae-tf compress RUN photo.png shot.jpg grey.png --lossless` and back:
    a grey image is coded as RGB (replicated) and written back grey."""
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 255, 57).astype(np.uint8)
    photo = np.stack(np.broadcast_arrays(ramp[None], ramp[:45, None], 90), -1)
    photo = (photo + rng.integers(0, 9, photo.shape)).astype(np.uint8)  # 45x57
    Image.fromarray(photo).save(tmp_path / "photo.png")
    Image.fromarray(photo[:20, :70]).save(tmp_path / "shot.jpg", quality=80)
    Image.fromarray(photo[:33, :40, 1]).save(tmp_path / "grey.png")
    # An RGB file whose channels are equal stays RGB.
    Image.fromarray(np.repeat(photo[:9, :5, :1], 3, -1)).save(tmp_path / "flat.png")
    names = ("photo.png", "shot.jpg", "grey.png", "flat.png")
    paths = [tmp_path / name for name in names]
    originals = [np.asarray(Image.open(path)) for path in paths]
    figures = compress_files(colour_model, paths, tmp_path / "x.vtfz", verbose=False)
    assert figures["images"] == 4 and figures["conversions"] == {}
    written = decompress_file(colour_model, tmp_path / "x.vtfz", tmp_path / "out")
    for original, path in zip(originals, written):
        back = Image.open(path)
        assert back.mode == ("L" if original.ndim == 2 else "RGB")
        np.testing.assert_array_equal(np.asarray(back), original)
    # The same from Python: grey images come back with one channel.
    codec = BitsBackCodec(colour_model)
    images = [originals[2], originals[3], originals[2][:5, :6, None]]
    decoded = BitsBackCodec.decompress_bytes(colour_model, codec.compress(images))
    assert [d.shape for d in decoded] == [(33, 40, 1), (9, 5, 3), (5, 6, 1)]
    for original, image in zip(images, decoded):
        np.testing.assert_array_equal(image.reshape(original.shape), original)
    # A batch array of grey images, too.
    batch = originals[2][None, :32, :32, None]
    data = codec.compress(batch)
    assert BitsBackCodec.decompress_bytes(colour_model, data)[0].shape == (32, 32, 1)
    # The output may not be one of the inputs, or a folder.
    with pytest.raises(ValueError, match="is one of the images"):
        compress_files(colour_model, paths, paths[0], overwrite=True)
    with pytest.raises(IsADirectoryError, match="not a directory"):
        compress_files(colour_model, paths, f"{tmp_path}/new/")
    assert paths[0].read_bytes()[:4] == b"\x89PNG" and not (tmp_path / "new").exists()


def test_files_of_the_doubling_schedule_still_decode(model_8bit, mnist_uint8):
    # As written before the adaptive batches, the sized seed and the window.
    images = mnist_uint8[1][:20]
    old = BitsBackCodec(model_8bit, schedule=0, seed_words=32, latent_window=0)
    data = old.compress(images)
    params = container.unpack(data).params
    assert (params["schedule"], params["seed_words"], params["latent_window"]) == (
        0,
        32,
        0,
    )
    np.testing.assert_array_equal(
        BitsBackCodec.decompress_bytes(model_8bit, data), images
    )


def test_batches_of_one_image_and_keras_shaped_arrays_code(model_8bit, mnist_uint8):
    """`batch_size=1` codes every image alone (no batch sizes in the
    stream); keras's `(N, 28, 28)` uint8 arrays are images of one channel."""
    images = mnist_uint8[1][:3]
    data = BitsBackCodec(model_8bit, batch_size=1).compress(images)
    np.testing.assert_array_equal(
        BitsBackCodec.decompress_bytes(model_8bit, data), images
    )
    codec = BitsBackCodec(model_8bit)
    assert codec.compress(images[..., 0]) == codec.compress(images)
    with pytest.raises(ValueError, match=r"Received: an array of shape \(28, 28, 1\)"):
        codec.compress(images[0])


def test_arithmetic_names_and_codes(model_8bit):
    for arithmetic in ("fixed-point", 2, np.int64(2)):
        assert (
            BitsBackCodec(model_8bit, arithmetic=arithmetic).arithmetic == "fixed-point"
        )
    assert BitsBackCodec(model_8bit, arithmetic=1).arithmetic == "fixed-point-v1"
    for wrong in (True, "FLOAT", 3, 2.0, ["float"], None):
        with pytest.raises(ValueError, match="Unknown arithmetic"):
            BitsBackCodec(model_8bit, arithmetic=wrong)


def test_doubling_batches_grow_from_one_image_then_stay_at_batch_size(model_8bit):
    codec = BitsBackCodec(model_8bit, batch_size=8)
    assert codec.batches(20) == [(0, 1), (1, 3), (3, 7), (7, 15), (15, 20)]
    assert codec.batches(1) == [(0, 1)]


def test_networks_run_long_batches_in_chunks_and_write_the_same_file(
    model_8bit, mnist_uint8, monkeypatch
):
    """The fixed-point networks run a batch in chunks of `chunk` images (and
    XLA, past its threshold, on whole chunks): the same file, byte for byte,
    as with no chunking and no XLA, and it decodes bit for bit."""
    images = mnist_uint8[1][:400]
    codec = BitsBackCodec(model_8bit, batch_size=100)
    assert codec._decode.chunk == codec._posterior.chunk == FixedPointNetwork.CHUNK
    monkeypatch.setattr(FixedPointNetwork, "XLA_AFTER", 10**9)
    for network in (codec._decode, codec._posterior):  # shared: restored after
        monkeypatch.setattr(network, "chunk", None)
    whole = codec.compress(images)
    monkeypatch.setattr(FixedPointNetwork, "XLA_AFTER", 40)
    monkeypatch.setattr(FixedPointNetwork, "XLA_MIN_BATCH", 7)
    for network in (codec._decode, codec._posterior):
        monkeypatch.setattr(network, "chunk", 7)
        monkeypatch.setattr(network, "_fused", None)
        monkeypatch.setattr(network, "_fused_shapes", set())
        monkeypatch.setattr(network, "_items", 0)
    batches, params = [], codec._params
    codec._params = lambda z_bins, count: batches.append(count) or params(z_bins, count)
    chunked = codec.compress(images)
    assert max(batches) > 7 and sum(batches) == 400
    # XLA ran on whole chunks only.
    assert {shapes[0][0] for shapes in codec._decode._fused_shapes} == {7}
    assert callable(codec._decode._fused)
    assert chunked == whole
    np.testing.assert_array_equal(
        BitsBackCodec.decompress_bytes(model_8bit, chunked), images
    )


def test_posteriors_computed_ahead_in_a_thread_write_the_same_file(
    model_8bit, mnist_uint8, monkeypatch
):
    """The encoder's posteriors are computed ahead in a background thread,
    `IN_FLIGHT` blocks at a time: the file does not depend on how many, an
    error in the thread reaches the caller, and no thread is left behind."""
    images = mnist_uint8[1][:120]
    codec = BitsBackCodec(model_8bit, batch_size=16)
    threads, posterior_bins = set(), codec._posterior_bins

    def recorded(batch):
        threads.add(threading.current_thread().name)
        return posterior_bins(batch)

    monkeypatch.setattr(codec, "_posterior_bins", recorded)
    files = []
    for in_flight in (1, 3):
        monkeypatch.setattr(bitsback._Posteriors, "IN_FLIGHT", in_flight)
        files.append(codec.compress(images))
    assert files[0] == files[1]
    assert all(name.startswith("bits-back-posteriors") for name in threads)
    np.testing.assert_array_equal(
        BitsBackCodec.decompress_bytes(model_8bit, files[0]), images
    )

    def broken(batch):
        raise RuntimeError("posterior failed")

    monkeypatch.setattr(codec, "_posterior_bins", broken)
    with pytest.raises(RuntimeError, match="posterior failed"):
        codec.compress(images)
    left = [t for t in threading.enumerate() if t.name.startswith("bits-back")]
    assert not left


def test_fixed_point_batches_are_whole_chunks_but_the_last(
    model_8bit, mnist_uint8, monkeypatch
):
    """With fixed-point networks, an adaptive batch of a chunk or more is a
    whole number of chunks (`FixedPointNetwork.CHUNK`), but for the last;
    the float arithmetic's batches are not rounded."""
    images = mnist_uint8[1][:300]
    monkeypatch.setattr(FixedPointNetwork, "CHUNK", 16)
    for arithmetic, rounded in (("fixed-point", True), ("float", False)):
        codec = BitsBackCodec(model_8bit, batch_size=100, arithmetic=arithmetic)
        batches, params = [], codec._params
        codec._params = lambda z_bins, count, batches=batches, params=params: (
            batches.append(count) or params(z_bins, count)
        )
        data = codec.compress(images)
        assert sum(batches) == 300 and max(batches[:-1]) >= 16
        whole = all(b < 16 or b % 16 == 0 for b in batches[:-1])
        assert whole if rounded else not whole
        np.testing.assert_array_equal(
            BitsBackCodec.decompress_bytes(model_8bit, data), images
        )


def test_the_header_holds_the_codec_model_and_sizes(model_8bit, small_file):
    parsed = container.unpack(small_file)
    assert parsed.kind == container.LOSSLESS
    assert parsed.fingerprint == container.model_fingerprint(model_8bit)
    assert parsed.num_images == 3 and parsed.channels == 1
    np.testing.assert_array_equal(parsed.sizes, [[28, 28]] * 3)
    # The codec's settings, with the seed's length chosen for these images.
    settings = BitsBackCodec(model_8bit).settings
    assert settings["seed_words"] is None
    assert parsed.params == {**settings, "seed_words": parsed.params["seed_words"]}
    assert parsed.params["seed_words"] > 0


def reseal(body: bytes) -> bytes:
    """`body` with a correct checksum, so the checks behind the CRC run."""
    return body + struct.pack("<I", zlib.crc32(body))


def header_with(small_file, **fields):
    """The file with fixed header fields replaced, checksum recomputed."""
    magic, version, kind, fingerprint, channels, count = container._FIXED.unpack(
        small_file[: container._FIXED.size]
    )
    values = dict(
        magic=magic,
        version=version,
        kind=kind,
        fingerprint=fingerprint,
        channels=channels,
        count=count,
    )
    values.update(fields)
    head = container._FIXED.pack(*values.values())
    return reseal(head + small_file[container._FIXED.size : -4])


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"version": 2}, "Unsupported file version 2"),
        ({"kind": 7}, "Unknown codec kind 7"),
        ({"channels": 2}, "1 or 3 channels"),
        ({"count": 0}, "image count 0 is out of bounds"),
        ({"count": 4_000_000_000}, "out of bounds"),
        ({"count": 9_000_000}, "more than"),
    ],
)
def test_header_fields_out_of_bounds_are_clear_errors(small_file, fields, message):
    with pytest.raises(CorruptFileError, match=message):
        container.unpack(header_with(small_file, **fields))


def test_settings_and_lengths_are_checked_before_use(model_8bit, small_file):
    codec = BitsBackCodec(model_8bit, seed_words=32)
    bad = dict(codec.settings, latent_bits=40)
    data = codec.pack(
        container.Encoded(np.array([1], np.uint32), np.tile([28, 28], (3, 1)), {})
    )
    body = data[:-4].replace(
        json.dumps(codec.settings, sort_keys=True, separators=(",", ":")).encode(),
        json.dumps(bad, sort_keys=True, separators=(",", ":")).encode(),
    )
    with pytest.raises(CorruptFileError, match="latent_bits=40 is out of bounds"):
        BitsBackCodec.from_file(model_8bit, reseal(body))
    # Per-image sizes that the file does not hold.
    flag = container._FIXED.size
    many = header_with(small_file, count=1_000_000)
    with pytest.raises(CorruptFileError, match="truncated: the image sizes"):
        container.unpack(reseal(many[:flag] + b"\x00" + many[flag + 1 : -4]))
    with pytest.raises(CorruptFileError, match="same-size flag is 7"):
        container.unpack(
            reseal(small_file[:flag] + b"\x07" + small_file[flag + 1 : -4])
        )
    # A payload length that disagrees with the bytes present.
    with pytest.raises(CorruptFileError, match="payload length says"):
        container.unpack(reseal(small_file[:-8]))


def test_wrong_model_is_detected(small_file, mnist_uint8):
    other = small_8bit_vae(seed=1)
    other.build((None, 28, 28, 1))
    with pytest.raises(WrongModelError, match="another model"):
        BitsBackCodec.decompress_bytes(other, small_file)


def test_thousands_of_corruptions_and_truncations_are_clear_errors(
    model_8bit, small_file
):
    rng = np.random.default_rng(0)
    mutations = [small_file[:n] for n in range(len(small_file))]  # truncations
    for _ in range(2000):  # byte changes
        data = bytearray(small_file)
        for position in rng.integers(0, len(data), rng.integers(1, 4)):
            data[position] = (data[position] + rng.integers(1, 256)) % 256
        mutations.append(bytes(data))
    for _ in range(200):  # insertions and deletions
        position = int(rng.integers(0, len(small_file)))
        mutations.append(small_file[:position] + b"\x00" + small_file[position:])
        mutations.append(small_file[:position] + small_file[position + 1 :])
    mutations += [b"", b"VTFZ", b"\x89PNG\r\n\x1a\n" + small_file, small_file + b"x"]
    assert len(mutations) > 2000
    for data in mutations:
        with pytest.raises((CorruptFileError, WrongModelError)):
            BitsBackCodec.decompress_bytes(model_8bit, data)


def test_a_damaged_payload_behind_a_valid_checksum_is_a_clear_error(
    model_8bit, small_file
):
    parsed = container.unpack(small_file)
    rng = np.random.default_rng(1)
    for _ in range(10):
        payload = parsed.payload.copy()
        payload[rng.integers(0, len(payload) - 1)] ^= np.uint32(rng.integers(1, 2**32))
        encoded = container.Encoded(payload, parsed.sizes, {}, parsed.params)
        data = BitsBackCodec(model_8bit).pack(encoded)
        # The message says what a failed check means for the file's arithmetic.
        with pytest.raises(
            CorruptFileError, match="consistent stream.*fixed-point.*damaged"
        ):
            BitsBackCodec.decompress_bytes(model_8bit, data)


def test_images_the_model_cannot_code_are_clear_errors(
    model_8bit, binary_model, mnist_uint8
):
    grey = mnist_uint8[1][:4]
    with pytest.raises(ValueError, match="binary images, pixels 0 or 255"):
        BitsBackCodec(binary_model).compress(grey)
    with pytest.raises(ValueError, match=r"shape \(height, width, 1\)"):
        BitsBackCodec(model_8bit).compress(np.zeros((2, 32, 32, 3), np.uint8))
    with pytest.raises(ValueError, match="Image sides must be 1 to 65535 pixels"):
        BitsBackCodec(model_8bit).compress([np.zeros((0, 5, 1), np.uint8)])
    with pytest.raises(ValueError, match="no images"):
        BitsBackCodec(model_8bit).compress([])
    with pytest.raises(ValueError, match="uint8"):
        BitsBackCodec(model_8bit).compress(grey.astype("float32"))
    cifar = presets.get("cifar10-conv").build_model()
    cifar.build((None, 32, 32, 3))
    with pytest.raises(ValueError, match="DiscretizedLogisticMixture"):
        BitsBackCodec(cifar)


def test_images_of_any_size_are_coded_as_tiles_and_come_back_exactly(
    model_8bit, mnist_uint8
):
    rng = np.random.default_rng(0)
    digits = mnist_uint8[1]
    # A 2x3 mosaic of digits with a ragged edge, one smaller than a tile, one
    # the model's size, and noise that no tile's model predicts.
    mosaic = np.block([[digits[i + 3 * j, ..., 0] for i in range(3)] for j in range(2)])
    images = [
        mosaic[:50, :70, None],
        digits[6][:9, :20],
        digits[7],
        rng.integers(0, 256, (40, 30, 1), dtype=np.uint8),
    ]
    codec = BitsBackCodec(model_8bit)
    tiles, regions = codec.tiles(images)
    assert len(tiles) == 2 * 3 + 1 + 1 + 2 * 2
    np.testing.assert_array_equal(regions[:3], [[28, 28], [28, 28], [28, 14]])
    assert not tiles[2][:, 14:].any()  # padding past the edge is 0
    encoded = codec.encode(images)
    np.testing.assert_array_equal(
        encoded.sizes, [[50, 70], [9, 20], [28, 28], [40, 30]]
    )
    decoded = codec.decode(encoded.payload, encoded.sizes)
    for original, image in zip(images, decoded):
        np.testing.assert_array_equal(image, original)
    # Only the pixels inside the images are coded: a tile's padding costs
    # nothing, so the mosaic's tiles cost what the digits in them cost.
    data = codec.compress(images)
    assert [i.shape for i in BitsBackCodec.decompress_bytes(model_8bit, data)] == [
        i.shape for i in images
    ]
    whole = BitsBackCodec(model_8bit).encode(digits[:6]).stats["net_bits"]
    alone = codec.encode([mosaic[:, :, None]]).stats["net_bits"]
    assert alone == pytest.approx(whole, rel=0.03)


def test_a_file_with_impossible_image_sizes_is_a_clear_error(model_8bit):
    from vae_tf.compression.container import CorruptFileError

    codec = BitsBackCodec(model_8bit)
    encoded = codec.encode([np.zeros((5, 5, 1), np.uint8)])
    for sizes in ([[0, 5]], [[20_000, 20_000]]):
        with pytest.raises(CorruptFileError, match="image sizes are out of range"):
            codec.decode(encoded.payload, np.array(sizes))


@pytest.fixture(scope="module")
def run_dir(model_8bit, tmp_path_factory):
    path = tmp_path_factory.mktemp("run")
    model_8bit.save(path / "model.keras")
    (path / "run.json").write_text(json.dumps({"preset": "mnist-8bit"}))
    return path


def test_cli_compresses_pngs_and_decompresses_them_exactly(
    run_dir, mnist_uint8, tmp_path, capsys
):
    images = mnist_uint8[1][:5]
    paths = []
    for i, image in enumerate(images):
        paths.append(tmp_path / f"digit{i}.png")
        Image.fromarray(image[..., 0]).save(paths[-1])
    packed = tmp_path / "digits.vtfz"
    argv = ["compress", str(run_dir), *map(str, paths), "-o", str(packed)]
    assert cli.main([*argv, "--lossless"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["images"] == 5 and figures["bytes"] == packed.stat().st_size
    out = tmp_path / "decoded"
    assert (
        cli.main(["decompress", str(run_dir), str(packed), "--output-dir", str(out)])
        == 0
    )
    decoded = [np.asarray(Image.open(out / f"{i:05d}.png")) for i in range(5)]
    np.testing.assert_array_equal(np.stack(decoded)[..., None], images)
    # Decoding again into the same folder refuses to overwrite.
    assert (
        cli.main(["decompress", str(run_dir), str(packed), "--output-dir", str(out)])
        == 2
    )
    assert "already exists" in capsys.readouterr().err
    # Without --lossless there is no codec for this model: a clear error.
    assert cli.main(argv) == 2
    assert "--lossless" in capsys.readouterr().err
    # An existing file is kept unless --overwrite; a missing folder is made.
    before = packed.read_bytes()
    assert cli.main([*argv, "--lossless"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert packed.read_bytes() == before
    assert cli.main([*argv, "--lossless", "--overwrite"]) == 0
    deeper = tmp_path / "new" / "folder" / "d.vtfz"
    argv[argv.index(str(packed))] = str(deeper)
    assert cli.main([*argv, "--lossless"]) == 0
    assert deeper.read_bytes() == before  # the same images, the same bytes
    # A damaged file's error names it.
    damaged = tmp_path / "damaged.vtfz"
    damaged.write_bytes(before[: len(before) // 2])
    assert (
        cli.main(["decompress", str(run_dir), str(damaged), "--output-dir", str(out)])
        == 2
    )
    assert f"error: {damaged}: " in capsys.readouterr().err


def test_cli_rejects_foreign_files_and_bad_images(run_dir, tmp_path, capsys):
    foreign = tmp_path / "notes.vtfz"
    foreign.write_bytes(b"hello, world")
    out = tmp_path / "out"
    assert (
        cli.main(["decompress", str(run_dir), str(foreign), "--output-dir", str(out)])
        == 2
    )
    assert "Not a vae_tf compressed file" in capsys.readouterr().err
    assert not out.exists()
    colour = tmp_path / "colour.png"
    red = np.zeros((28, 28, 3), np.uint8)
    red[..., 0] = 255
    Image.fromarray(red).save(colour)
    text = tmp_path / "text.png"
    text.write_text("not an image")
    for path, message in [(colour, "colour image"), (text, "not a readable image")]:
        argv = ["compress", str(run_dir), str(path), "-o", str(tmp_path / "x.vtfz")]
        assert cli.main([*argv, "--lossless"]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "x.vtfz").exists()


def test_a_refused_image_among_several_is_named(binary_model, mnist_uint8, tmp_path):
    from vae_tf.compression.files import compress_files

    paths = []
    for i, image in enumerate(mnist_uint8[1][:3]):
        if i != 1:
            image = (image > 127).astype(np.uint8) * 255  # binary, codable
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(image[..., 0]).save(paths[-1])
    output = tmp_path / "x.vtfz"
    with pytest.raises(ValueError, match=r"1\.png: .*binary images, pixels 0 or 255"):
        compress_files(binary_model, paths, output, lossless=True, verbose=False)
    assert not output.exists()
