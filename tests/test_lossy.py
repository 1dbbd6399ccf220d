"""The lossy codec: the uniform-noise VAE, its prior, coded files and the CLI."""

import dataclasses
import json
import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import vae_tf
from vae_tf import cli, evaluation, presets
from vae_tf.compression import (
    BitsBackCodec,
    CorruptFileError,
    LossyCodec,
    WrongModelError,
    baselines,
    container,
)
from vae_tf.models.lossy import (
    GDN,
    ChannelGaussianPrior,
    LossyVAE,
    latent_log_mass,
    scale_indices,
    scale_table,
)


def colour_digits(count: int) -> np.ndarray:
    """Bundled MNIST digits as RGB: each channel a differently shifted digit."""
    digits, _ = vae_tf.data.load_arrays("mnist", "train", source="bundled")
    digits = digits[: count + 2, ..., 0]
    return np.stack([digits[:count], digits[1 : count + 1], digits[2:]], axis=-1)


def tiny_lossy(seed=0, lmbda=0.01, hyperprior_channels=0, mean_scale=False):
    return LossyVAE(
        lmbda,
        filters=8,
        latent_channels=6,
        num_layers=2,
        hyperprior_channels=hyperprior_channels,
        mean_scale=mean_scale,
        seed=seed,
    )


@pytest.fixture(scope="module")
def images():
    return colour_digits(600)


def trained(images, hyperprior_channels, mean_scale=False):
    keras.utils.set_random_seed(0)
    model = tiny_lossy(hyperprior_channels=hyperprior_channels, mean_scale=mean_scale)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    model.fit(images.astype("float32") / 255.0, batch_size=32, epochs=3, verbose=0)
    return model


@pytest.fixture(scope="module")
def factorised(images):
    return trained(images, hyperprior_channels=0)


@pytest.fixture(scope="module")
def hyperprior(images):
    return trained(images, hyperprior_channels=4)


@pytest.fixture(scope="module")
def mean_scale(images):
    return trained(images, hyperprior_channels=4, mean_scale=True)


@pytest.fixture
def model(factorised):
    return factorised


@pytest.fixture(params=["factorised", "hyperprior", "mean_scale"])
def any_model(request):
    """Each of the three priors, for the tests of what every codec must do."""
    return request.getfixturevalue(request.param)


def test_gdn_divides_by_the_norm_of_its_neighbours():
    layer = GDN()
    x = np.random.default_rng(0).normal(size=(2, 3, 3, 4)).astype("float32")
    layer.build(x.shape)
    layer.beta_root.assign(np.array([1.0, 0.5, 2.0, 1.5], "float32"))
    gamma_root = np.random.default_rng(1).uniform(0, 1, (4, 4)).astype("float32")
    layer.gamma_root.assign(gamma_root)
    beta, gamma = layer.beta_root.numpy() ** 2 + 1e-6, gamma_root**2
    expected = x / np.sqrt(beta + np.einsum("...j,ji->...i", x**2, gamma))
    np.testing.assert_allclose(layer(x), expected, rtol=1e-5)
    inverse = GDN(inverse=True)
    inverse.build(x.shape)
    inverse.set_weights(layer.get_weights())
    np.testing.assert_allclose(inverse(x) * layer(x), x**2, rtol=1e-4, atol=1e-6)


def test_prior_gives_the_discretised_gaussian_mass_and_sums_to_one():
    prior = ChannelGaussianPrior(2)
    prior.mean.assign([0.3, -1.2])
    prior.log_scale.assign([np.log(0.8), np.log(3.0)])
    k = np.arange(-40, 41, dtype="float32")[:, None].repeat(2, axis=1)  # (81, 2)
    p = prior(k).numpy()
    phi = np.vectorize(lambda t: 0.5 * math.erfc(-t / math.sqrt(2.0)))
    for c, (mu, sigma) in enumerate([(0.3, 0.8), (-1.2, 3.0)]):
        expected = phi((k[:, c] + 0.5 - mu) / sigma) - phi((k[:, c] - 0.5 - mu) / sigma)
        np.testing.assert_allclose(p[:, c], np.maximum(expected, 1e-9), rtol=1e-5)
        assert abs(p[:, c].sum() - 1.0) < 1e-5


def test_training_lowers_the_loss_and_reaches_every_weight(images):
    keras.utils.set_random_seed(1)
    model = tiny_lossy(seed=1)
    x = images[:64].astype("float32") / 255.0
    with tf.GradientTape() as tape:
        bits, x_hat = model.terms(x, training=True)
        loss = tf.reduce_mean(bits) + tf.reduce_mean(tf.square(255.0 * (x - x_hat)))
    gradients = tape.gradient(loss, model.trainable_weights)
    assert all(g is not None and np.any(g.numpy() != 0) for g in gradients)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    before = model.evaluate(x, batch_size=32, verbose=0, return_dict=True)["loss"]
    model.fit(x, batch_size=16, epochs=5, verbose=0)
    after = model.evaluate(x, batch_size=32, verbose=0, return_dict=True)["loss"]
    assert after < 0.8 * before


def test_fit_and_evaluate_report_the_mean_of_each_images_psnr(model, images):
    # One PSNR in the package: Keras's metric is the mean of tf.image.psnr per
    # image (of the unclipped decoding from rounded latents), not the PSNR of
    # the batch's mean squared error.
    x = np.pad(images[:48], ((0, 0), (2, 2), (2, 2), (0, 0))).astype("float32") / 255
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    reported = model.evaluate(x, batch_size=16, verbose=0, return_dict=True)
    per_image = tf.image.psnr(model(x), x, max_val=1.0).numpy()
    assert reported["psnr"] == pytest.approx(per_image.mean(), abs=1e-3)
    of_mean_mse = 10 * np.log10(255.0**2 / reported["mse"])
    assert abs(of_mean_mse - per_image.mean()) > 1e-2  # the two definitions differ


def test_config_and_keras_file_round_trips_give_identical_outputs(any_model, tmp_path):
    x = colour_digits(4).astype("float32") / 255.0
    clone = LossyVAE.from_config(any_model.get_config())
    clone.set_weights(any_model.get_weights())
    np.testing.assert_array_equal(clone(x), any_model(x))
    any_model.save(tmp_path / "lossy.keras")
    loaded = keras.saving.load_model(tmp_path / "lossy.keras")
    np.testing.assert_array_equal(loaded(x), any_model(x))
    assert loaded.lmbda == any_model.lmbda


def test_hyperprior_codes_each_latent_under_its_predicted_scale(hyperprior, images):
    x = np.pad(images[:4], ((0, 0), (2, 2), (2, 2), (0, 0))) / 255.0  # 32x32
    y = hyperprior.analysis(x.astype("float32"))
    y_hat, bits = hyperprior.rate_bits(y)
    z_hat = np.round(hyperprior.hyper_analysis(y).numpy())
    scales = hyperprior.latent_scales(z_hat).numpy()
    assert scales.shape == y_hat.shape and scales.min() >= 0.11
    phi = np.vectorize(lambda t: 0.5 * math.erfc(-t / math.sqrt(2.0)))
    t = np.abs(y_hat.numpy().astype("float64"))
    p_y = np.maximum(phi((-t + 0.5) / scales) - phi((-t - 0.5) / scales), 1e-9)
    p_z = hyperprior.prior(z_hat).numpy()
    expected = -np.log2(p_y).sum(axis=(1, 2, 3)) - np.log2(p_z).sum(axis=(1, 2, 3))
    np.testing.assert_allclose(bits, expected, rtol=1e-4)
    # The codec rounds each scale to the nearest (in log) of 64 table scales.
    table = scale_table()
    np.testing.assert_array_equal(scale_indices(table), np.arange(len(table)))
    between = np.sqrt(table[:-1] * table[1:]) * np.array([0.999, 1.001])[:, None]
    np.testing.assert_array_equal(scale_indices(between[0]), np.arange(63))
    np.testing.assert_array_equal(scale_indices(between[1]), np.arange(1, 64))
    assert hyperprior.downsampling == 8  # two stride-2 layers, one more in h_a


def test_the_mean_scale_hyperprior_codes_latents_around_their_predicted_means(
    mean_scale, images
):
    """`y_hat = round(y - mu) + mu`: the decoder's latents sit on the grid of
    the means the hyperprior predicts, not on the integers; the rate is the
    mass of `round(y - mu)` under `N(0, sigma)`; the served model rounds the
    same way."""
    x = images[:4].astype("float32") / 255.0
    y = mean_scale.analysis(x)
    z_hat = tf.round(mean_scale.hyper_analysis(y))
    mu, sigma = (t[:, :7, :7] for t in mean_scale.latent_distribution(z_hat))
    assert float(tf.math.reduce_std(mu)) > 0.05  # the means are used
    y_hat, bits = mean_scale.rate_bits(y)
    np.testing.assert_allclose(y_hat, tf.round(y - mu) + mu, atol=1e-5)
    assert np.mean(np.abs(y_hat - np.round(y_hat))) > 0.05  # not integers
    symbols = np.round(np.asarray(y - mu))
    mass = latent_log_mass(symbols, 0.0, sigma)
    side = mean_scale.prior.log_prob(z_hat)
    want = -(np.sum(mass, axis=(1, 2, 3)) + np.sum(side, axis=(1, 2, 3))) / np.log(2)
    np.testing.assert_allclose(bits, want, rtol=1e-4)
    # The codec (fixed point: means on the 2**-16 grid) on the padded image.
    (latents,) = LossyCodec(mean_scale).latents(images[:1])
    padded = mean_scale.pad(images[:1]).astype("float32") / 255.0
    want, _ = mean_scale.rate_bits(mean_scale.analysis(padded))
    assert latents.dtype == np.float64 and latents.shape == want.shape[1:]
    assert np.mean(np.abs(latents - np.asarray(want[0])) < 1e-3) > 0.99
    with pytest.raises(ValueError, match="mean_scale=True needs a hyperprior"):
        LossyVAE(mean_scale=True)


def test_mixed_precision_keeps_the_rate_in_float32(images, tmp_path):
    x = np.pad(images[:16], ((0, 0), (2, 2), (2, 2), (0, 0))) / 255.0
    with vae_tf.distribute.precision_policy("mixed_bfloat16"):
        model = tiny_lossy(hyperprior_channels=4, mean_scale=True)
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
        history = model.fit(x.astype("float32"), batch_size=8, epochs=1, verbose=0)
    assert model.synthesis.compute_dtype == "bfloat16"
    hyper = [model.prior, *model.hyper_analysis.layers, *model.hyper_synthesis.layers]
    assert all(layer.compute_dtype == "float32" for layer in hyper)
    assert np.isfinite(history.history["loss"]).all()
    # The transforms hand float32 to everything that reads them: evaluation
    # (which failed on a bfloat16 reconstruction), the endpoints and the codec.
    x = tf.constant(x[:4], tf.float32)
    assert model.analysis(x).dtype == model.synthesis(model.analysis(x)).dtype
    assert model.synthesis(model.analysis(x)).dtype == tf.float32
    scores = model.evaluate_dataset(tf.data.Dataset.from_tensors(x))
    assert 0 < scores["test_bpp"] and 5 < scores["test_psnr_db"] < 60
    vae_tf.export_saved_model(model, tmp_path / "saved")
    served = tf.saved_model.load(str(tmp_path / "saved"))
    x_hat = served.signatures["reconstruct"](x=x)["x_hat"]
    assert x_hat.dtype == tf.float32
    # bfloat16 kernels differ between the graph and eager by an ulp or two,
    # which can flip the rounding of latents near a half: equal in quality.
    psnrs = [
        float(tf.reduce_mean(tf.image.psnr(r, x, 1.0)))
        for r in (x_hat, model.reconstruct(x))
    ]
    assert abs(psnrs[0] - psnrs[1]) < 0.3, psnrs
    pixels = list(images[:2])
    for arithmetic in ("float", "fixed-point"):
        codec = LossyCodec(model, arithmetic=arithmetic)
        decoded = LossyCodec.decompress_bytes(model, codec.compress(pixels))
        for out, latents in zip(decoded, codec.latents(pixels)):
            (expected,) = codec.reconstruct(latents[None])
            np.testing.assert_array_equal(out, expected[: out.shape[0], : out.shape[1]])


def test_bad_settings_are_clear_errors():
    with pytest.raises(ValueError, match="lmbda must be a positive number"):
        LossyVAE(lmbda=0)
    with pytest.raises(ValueError, match="Received: num_layers=0"):
        LossyVAE(num_layers=0)
    with pytest.raises(ValueError, match="Received: hyperprior_channels=-1"):
        LossyVAE(hyperprior_channels=-1)
    with pytest.raises(ValueError, match="lossy-codec presets only"):
        presets.get("mnist-dense").build_model(0, lmbda=0.1)
    lossy = presets.get("cifar10-lossy").build_model(0, lmbda=0.05)
    assert isinstance(lossy, LossyVAE) and lossy.lmbda == 0.05


@pytest.mark.parametrize(
    "arithmetic, off_by_one", [("fixed-point", 0.03), ("fixed-point-v1", 0.01)]
)
def test_round_trip_gives_the_encoders_reconstruction_at_any_size(
    any_model, images, arithmetic, off_by_one
):
    rng = np.random.default_rng(0)
    odd = rng.integers(0, 256, (13, 30, 3), dtype=np.uint8)
    batch = [images[0], odd, images[1], images[2], odd[:1, :1]]
    codec = LossyCodec(any_model, arithmetic=arithmetic)
    decoded = LossyCodec.decompress_bytes(any_model, codec.compress(batch))
    assert [d.shape for d in decoded] == [b.shape for b in batch]
    for image, latents, out in zip(batch, codec.latents(batch), decoded):
        (expected,) = codec.reconstruct(latents[None])
        h, w = image.shape[:2]
        np.testing.assert_array_equal(out, expected[:h, :w])
        # The fixed-point synthesis is the float network's, up to rounding:
        # no pixel value more than one level away, and few one level away
        # (measured: 0.4% to 1.7% with 16-bit products, at most 0.3% with
        # the first fixed point's products of the whole grid).
        x_hat = any_model.synthesis(latents[None].astype("float32")).numpy()[0]
        in_float = np.round(np.clip(x_hat, 0.0, 1.0) * 255.0)[:h, :w]
        difference = np.abs(out.astype(float) - in_float)
        assert difference.max() <= 1 and difference.mean() < off_by_one


def test_a_file_decodes_whatever_batch_size_wrote_it(any_model, images):
    """The stream's layout follows the encoder's batches: the file records
    their size (a hyperprior file of 5 images in batches of 2 did not decode)."""
    batch = list(images[:5])
    codec = LossyCodec(any_model, batch_size=2)
    data = codec.compress(batch)
    assert container.unpack(data).params["batch_size"] == 2
    decoded = LossyCodec.decompress_bytes(any_model, data)
    expected = codec.reconstruct(np.stack(codec.latents(batch)))  # padded
    np.testing.assert_array_equal(np.stack(decoded), expected[:, :28, :28])


def test_coded_size_agrees_with_the_models_rate(any_model, images):
    test = images[400:600]
    figures = evaluation.evaluate_rate_distortion(
        any_model, vae_tf.data.make_dataset(test, batch_size=50)
    )
    data = LossyCodec(any_model).compress(test)
    pixels = test.shape[0] * test.shape[1] * test.shape[2]
    payload_bits = 32 * len(container.unpack(data).payload)
    assert payload_bits / pixels == pytest.approx(figures["test_bpp"], rel=0.01)
    assert len(data) - 4 * len(container.unpack(data).payload) < 100  # the header
    decoded = np.stack(LossyCodec.decompress_bytes(any_model, data))
    psnr = tf.image.psnr(decoded, test, max_val=255).numpy().mean()
    # The fixed-point decoder's pixels against the float model's: within
    # 2e-4 dB here.
    assert psnr == pytest.approx(figures["test_psnr_db"], abs=1e-3)


def test_wrong_model_and_wrong_codec_are_detected(any_model, images):
    data = LossyCodec(any_model).compress(images[:3])
    other = tiny_lossy(
        seed=5,
        hyperprior_channels=any_model.hyperprior_channels,
        mean_scale=any_model.mean_scale,
    )
    with pytest.raises(WrongModelError, match="another model"):
        LossyCodec.decompress_bytes(other, data)
    with pytest.raises(CorruptFileError, match="lossy file"):
        BitsBackCodec.from_file(any_model, data)
    with pytest.raises(ValueError, match="only codes losslessly"):
        LossyCodec(vae_tf.presets.get("mnist-dense").build_model(0))


def test_thousands_of_corrupted_lossy_files_are_clear_errors(any_model, images):
    data = LossyCodec(any_model).compress(images[:2])
    rng = np.random.default_rng(0)
    mutations = [data[:n] for n in range(len(data))]
    for _ in range(2000):
        damaged = bytearray(data)
        for position in rng.integers(0, len(damaged), rng.integers(1, 4)):
            damaged[position] = (damaged[position] + rng.integers(1, 256)) % 256
        mutations.append(bytes(damaged))
    assert len(mutations) > 2000
    for damaged in mutations:
        with pytest.raises((CorruptFileError, WrongModelError)):
            LossyCodec.decompress_bytes(any_model, damaged)


def test_a_payload_the_range_coder_rejects_is_a_clear_error(hyperprior, images):
    """A payload whose checksum holds but whose words are not the stream the
    decoder's probabilities expect (here: its first word gone, as a decoder
    computing other probabilities would see it): a `CorruptFileError` that
    says what to do, not the range coder's own assertion."""
    parsed = container.unpack(LossyCodec(hyperprior).compress(list(images[:3])))
    shifted = container.pack(dataclasses.replace(parsed, payload=parsed.payload[1:]))
    with pytest.raises(
        CorruptFileError, match="(did not decode|more data than its images).*"
    ):
        LossyCodec.decompress_bytes(hyperprior, shifted)


def test_images_the_codec_cannot_take_are_clear_errors(model):
    codec = LossyCodec(model)
    with pytest.raises(ValueError, match="uint8"):
        codec.compress([np.zeros((8, 8, 3), np.float32)])
    with pytest.raises(ValueError, match=r"\(height, width, 3\)"):
        codec.compress([np.zeros((8, 8), np.uint8)])
    with pytest.raises(ValueError, match="no images"):
        codec.compress([])


def test_saved_model_serves_reconstructions_without_vae_tf(model, tmp_path):
    vae_tf.export.export_saved_model(model, tmp_path / "sm")
    served = tf.saved_model.load(str(tmp_path / "sm"))
    x = colour_digits(3).astype("float32") / 255.0
    expected = np.clip(model(x), 0.0, 1.0)
    np.testing.assert_allclose(served.reconstruct(x)["x_hat"], expected, atol=1e-5)


def test_cli_compresses_a_photo_of_any_size_and_decodes_it(model, tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    model.save(run_dir / "model.keras")
    (run_dir / "run.json").write_text(json.dumps({"preset": "cifar10-lossy"}))
    rng = np.random.default_rng(0)
    photo = (np.add.outer(np.arange(45), np.arange(70)) * 2 % 256).astype(np.uint8)
    photo = np.stack([photo, photo[::-1], 255 - photo], axis=-1)
    photo = np.clip(photo + rng.integers(0, 8, photo.shape), 0, 255).astype(np.uint8)
    Image.fromarray(photo).save(tmp_path / "photo.png")
    Image.fromarray(photo).save(tmp_path / "photo.jpg", quality=95)
    packed = tmp_path / "photos.vtfz"
    paths = [str(tmp_path / "photo.png"), str(tmp_path / "photo.jpg")]
    assert cli.main(["compress", str(run_dir), *paths, "-o", str(packed)]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["bits_per_pixel"] == pytest.approx(
        8 * packed.stat().st_size / (2 * 45 * 70)
    )
    out = tmp_path / "decoded"
    assert (
        cli.main(["decompress", str(run_dir), str(packed), "--output-dir", str(out)])
        == 0
    )
    decoded = np.asarray(Image.open(out / "00000.png"))
    expected = LossyCodec.decompress_bytes(model, packed.read_bytes())[0]
    np.testing.assert_array_equal(decoded, expected)
    assert decoded.shape == photo.shape
    # A lossy codec has no pixel likelihood to code losslessly with.
    argv = ["compress", str(run_dir), paths[0], "-o", str(tmp_path / "x.vtfz")]
    assert cli.main([*argv, "--lossless"]) == 2
    assert "lossy codec" in capsys.readouterr().err
    assert not (tmp_path / "x.vtfz").exists()


def test_classical_baselines_measure_photos_of_any_size_one_file_each():
    """The photo benchmark's baselines: images of different sizes, one file
    each, rates counting whole files, quality the mean over the images."""
    rows, cols = np.mgrid[:180, :200]
    ramp = np.stack([rows, cols, rows + cols], axis=-1) % 256
    noise = np.random.default_rng(0).integers(0, 24, (180, 200, 3))
    photo = (ramp + noise).clip(0, 255).astype(np.uint8)
    images = [photo[:170], photo[:, :165]]
    pixels = 170 * 200 + 180 * 165
    jpeg = baselines.LOSSY_FORMATS["jpeg"]
    points = baselines.classical_sweep(images, "jpeg", (30, 90))
    for point, quality in zip(points, (30, 90)):
        files = [
            baselines.pillow_round_trip(i, quality=quality, **jpeg) for i in images
        ]
        assert point["bytes"] == sum(len(data) for data, _ in files)
        assert point["bits_per_pixel"] == 8 * point["bytes"] / pixels
        each = [
            baselines.image_quality(d[None], i[None])
            for (_, d), i in zip(files, images)
        ]
        assert point["psnr_db"] == pytest.approx(np.mean([e["psnr_db"] for e in each]))
        assert point["ms_ssim"] == pytest.approx(np.mean([e["ms_ssim"] for e in each]))
        error = files[0][1].astype(float) - images[0]
        psnr = 10 * np.log10(255**2 / np.mean(error**2))
        assert each[0]["psnr_db"] == pytest.approx(psnr, abs=1e-3)
    low, high = points
    assert high["bits_per_pixel"] > low["bits_per_pixel"]
    assert high["psnr_db"] > low["psnr_db"] and high["ms_ssim"] > low["ms_ssim"]
    # One image under MS-SSIM's 161 pixels a side, before or after a large one.
    for mixed in ([photo[:100, :100], photo], [photo, photo[:100, :100]]):
        quality = baselines.image_quality(mixed, mixed)
        assert quality == {"psnr_db": evaluation.PSNR_CAP_DB, "ms_ssim": None}
