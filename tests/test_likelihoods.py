import keras
import numpy as np
import pytest

from vae_tf import likelihoods
from vae_tf.likelihoods import Bernoulli


def numpy_bernoulli_log_prob(x, logits):
    logits = logits.astype(np.float64)
    p = 1.0 / (1.0 + np.exp(-logits))
    return (x * np.log(p) + (1 - x) * np.log1p(-p)).reshape(len(x), -1).sum(-1)


def test_bernoulli_log_prob_matches_numpy():
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=3.0, size=(4, 28, 28, 1)).astype("float32")
    x = (rng.random((4, 28, 28, 1)) < 0.3).astype("float32")
    ours = np.asarray(Bernoulli().log_prob(x, logits))
    np.testing.assert_allclose(ours, numpy_bernoulli_log_prob(x, logits), rtol=1e-5)


def test_bernoulli_log_prob_is_finite_for_extreme_logits():
    logits = np.array([[-1e4, 1e4, -80.0, 80.0]], "float32").reshape(1, 2, 2, 1)
    x = np.array([[1.0, 0.0, 1.0, 0.0]], "float32").reshape(1, 2, 2, 1)
    value = np.asarray(Bernoulli().log_prob(x, logits))
    assert np.isfinite(value).all()
    assert value[0] == pytest.approx(-(1e4 + 1e4 + 80 + 80), rel=1e-5)


def test_bernoulli_probabilities_of_both_outcomes_sum_to_one():
    logits = np.linspace(-20, 20, 41, dtype="float32").reshape(1, 41, 1, 1)
    log_p1 = [
        np.asarray(
            Bernoulli().log_prob(
                np.ones_like(logits[:, i : i + 1]), logits[:, i : i + 1]
            )
        )
        for i in range(41)
    ]
    log_p0 = [
        np.asarray(
            Bernoulli().log_prob(
                np.zeros_like(logits[:, i : i + 1]), logits[:, i : i + 1]
            )
        )
        for i in range(41)
    ]
    np.testing.assert_allclose(np.exp(log_p1) + np.exp(log_p0), 1.0, rtol=1e-6)


def test_dynamic_binarisation_samples_the_intensity_and_keeps_binary_pixels():
    x = np.full((200, 28, 28, 1), 0.3, "float32")
    x[:, 0, 0, 0] = 1.0
    x[:, 0, 1, 0] = 0.0
    targets = np.asarray(
        Bernoulli("dynamic").prepare_targets(x, seed=keras.random.SeedGenerator(0))
    )
    assert set(np.unique(targets)) <= {0.0, 1.0}
    assert targets[:, 2:].mean() == pytest.approx(0.3, abs=0.005)
    assert (targets[:, 0, 0, 0] == 1).all() and (targets[:, 0, 1, 0] == 0).all()


def test_dynamic_binarisation_draws_fresh_samples_each_step():
    generator = keras.random.SeedGenerator(0)
    x = np.full((1, 28, 28, 1), 0.5, "float32")
    first = np.asarray(Bernoulli("dynamic").prepare_targets(x, seed=generator))
    second = np.asarray(Bernoulli("dynamic").prepare_targets(x, seed=generator))
    assert (first != second).any()


def test_threshold_binarisation_thresholds_at_one_half_and_static_is_its_old_name():
    with pytest.warns(DeprecationWarning, match="vae_tf.data.binarize"):
        old = Bernoulli("static")
    assert old.binarization == "threshold"
    assert old.get_config() == {"binarization": "threshold"}
    x = np.array([0.2, 0.5, 0.51, 0.9], "float32").reshape(1, 2, 2, 1)
    np.testing.assert_array_equal(
        Bernoulli("threshold").prepare_targets(x).numpy().ravel(), [0, 0, 1, 1]
    )


def test_unknown_binarisation_is_rejected():
    with pytest.raises(ValueError, match="binarization"):
        Bernoulli("sometimes")


def test_get_resolves_names_instances_and_configs():
    assert isinstance(likelihoods.get("bernoulli"), Bernoulli)
    config = keras.saving.serialize_keras_object(Bernoulli("threshold"))
    assert likelihoods.get(config).binarization == "threshold"
    with pytest.raises(ValueError, match="Unknown likelihood"):
        likelihoods.get("poisson")


ALL_BYTES = (np.arange(256, dtype=np.float32) / 255.0).reshape(256, 1, 1, 1)


@pytest.mark.parametrize(
    "likelihood",
    [
        likelihoods.DiscretizedLogisticMixture(1),
        likelihoods.DiscretizedLogisticMixture(5),
        likelihoods.DiscretizedGaussian(),
    ],
)
@pytest.mark.parametrize("scale", [-6.0, -2.0, 0.0, 3.0])
def test_discretized_probabilities_sum_to_one_over_the_256_values(likelihood, scale):
    rng = np.random.default_rng(int(scale * 10) + 100)
    for _ in range(5):
        params = rng.normal(size=(1, 1, 1, likelihood.param_channels(1))).astype(
            "float32"
        )
        if isinstance(likelihood, likelihoods.DiscretizedGaussian):
            params[..., 1] = scale  # (mean, log_scale)
        else:
            K = likelihood.num_components
            params[..., 2 * K :] = scale  # log-scales after logits and means
        log_p = np.asarray(likelihood.log_prob(ALL_BYTES, np.repeat(params, 256, 0)))
        assert np.isfinite(log_p).all()
        assert np.exp(log_p.astype(np.float64)).sum() == pytest.approx(1.0, abs=2e-5)


@pytest.mark.parametrize("scale", [0.002, 0.05, 0.3, 2.0])
def test_fixed_scale_gaussian_sums_to_one_and_needs_only_means(scale):
    likelihood = likelihoods.DiscretizedGaussian(scale=scale)
    assert likelihood.param_channels(3) == 3
    for mean in (-1.2, -0.3, 0.0, 0.77):
        params = np.full((256, 1, 1, 1), mean, np.float32)
        log_p = np.asarray(likelihood.log_prob(ALL_BYTES, params), np.float64)
        assert np.isfinite(log_p).all()
        assert np.exp(log_p).sum() == pytest.approx(1.0, abs=2e-5)
    # Same as the learned-scale model whose log-scale is log(scale).
    learned = likelihoods.DiscretizedGaussian()
    params = np.concatenate(
        [np.full((256, 1, 1, 1), 0.1), np.full((256, 1, 1, 1), np.log(scale))], -1
    ).astype(np.float32)
    np.testing.assert_allclose(
        likelihood.log_prob(ALL_BYTES, params[..., :1]),
        learned.log_prob(ALL_BYTES, params),
        rtol=1e-5,
        atol=1e-5,
    )
    restored = likelihoods.get(keras.saving.serialize_keras_object(likelihood))
    assert restored.scale == pytest.approx(scale)
    with pytest.raises(ValueError, match="scale must be a positive number"):
        likelihoods.DiscretizedGaussian(scale=0.0)


def test_logistic_mixture_with_channel_coefficients_sums_to_one_over_colour_pairs():
    # Two channels, the second's mean moved by the first's value: the joint
    # over all 256 x 256 pairs must still sum to 1.
    likelihood = likelihoods.DiscretizedLogisticMixture(3)
    params = np.random.default_rng(0).normal(
        size=(1, 1, 1, likelihood.param_channels(2))
    )
    values = np.stack(np.meshgrid(np.arange(256), np.arange(256), indexing="ij"), -1)
    x = (values.reshape(-1, 1, 1, 2) / 255.0).astype("float32")
    log_p = np.asarray(
        likelihood.log_prob(x, np.repeat(params.astype("float32"), len(x), 0))
    )
    assert np.exp(log_p.astype(np.float64)).sum() == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize("mean, sigma", [(0.1, 0.5), (0.1, 0.05), (-0.7, 0.01)])
def test_discretized_gaussian_matches_a_numpy_cdf_difference(mean, sigma):
    from math import erf, sqrt

    params = np.array([mean, np.log(sigma)], "float32").reshape(1, 1, 1, 2)
    ours = likelihoods.DiscretizedGaussian().log_prob(
        ALL_BYTES, np.repeat(params, 256, 0)
    )
    ours = np.asarray(ours)

    def cdf(t):
        return 0.5 * (1 + erf(t / sqrt(2)))

    for k in range(256):
        x = 2 * k / 255 - 1
        upper = 1.0 if k == 255 else cdf((x + 1 / 255 - mean) / sigma)
        lower = 0.0 if k == 0 else cdf((x - 1 / 255 - mean) / sigma)
        if upper - lower > 1e-12:  # where float64 itself still resolves the mass
            assert ours[k] == pytest.approx(
                np.log(upper - lower), rel=1e-3, abs=1e-4
            ), k


def single_pixel_distribution(likelihood, params):
    """The 256 probabilities of a 1x1 grey image under `params` (1, 1, 1, P),
    from `log_prob`."""
    levels = (np.arange(256, dtype="float32") / 255.0).reshape(256, 1, 1, 1)
    tiled = np.repeat(params, 256, axis=0)
    return np.exp(np.asarray(likelihood.log_prob(levels, tiled), np.float64))


SCALE = np.log(0.04)  # a log-scale of about 5 levels: a peaked distribution
ONE_PIXEL = {  # likelihood -> (params of one grey pixel, its mean as a level)
    "gaussian": (
        likelihoods.DiscretizedGaussian(),
        [0.2, SCALE],
        (0.2 + 1) * 127.5,
    ),
    "autoregressive": (
        # m, s, then a_n and b_n for 10 neighbours, which for a 1x1 image are
        # all outside it (black, -1): mu = m - sum a_n, log sigma = s - sum b_n.
        likelihoods.LocalAutoregressiveGaussian(),
        [0.3, SCALE + 0.2] + [0.01] * 10 + [0.02] * 10,
        (0.3 - 0.1 + 1) * 127.5,
    ),
    "mixture": (
        # Logits, means and log-scales of 3 components (no colour coefficients).
        likelihoods.DiscretizedLogisticMixture(3),
        [0.5, 0.0, -1.0] + [-0.6, 0.1, 0.5] + [SCALE] * 3,
        None,
    ),
}


@pytest.mark.parametrize("kind", sorted(ONE_PIXEL))
def test_samples_follow_the_distribution_log_prob_scores(kind):
    # One grey pixel drawn 50,000 times: the histogram of the draws is the
    # distribution log_prob gives (a chi-square test, 5 sigma, over the values
    # expected 5 times or more, the rest pooled), and the mean image is its
    # mean.
    likelihood, values, mean_level = ONE_PIXEL[kind]
    params = np.array(values, "float32").reshape(1, 1, 1, -1)
    assert params.shape[-1] == likelihood.param_channels(1)
    probs = single_pixel_distribution(likelihood, params)
    assert probs.sum() == pytest.approx(1.0, abs=1e-4)
    draws = np.asarray(likelihood.sample(np.repeat(params, 50000, axis=0), seed=3))
    levels = np.round(draws.ravel() * 255).astype(int)
    np.testing.assert_allclose(draws.ravel() * 255, levels, atol=1e-3)
    counts = np.bincount(levels, minlength=256)
    expected = probs * len(levels)
    frequent = expected >= 5
    observed = np.append(counts[frequent], counts[~frequent].sum())
    expected = np.append(expected[frequent], expected[~frequent].sum())
    chi2 = np.sum((observed - expected) ** 2 / np.maximum(expected, 1e-9))
    dof = len(observed) - 1
    assert dof >= 10 and chi2 < dof + 5 * np.sqrt(2 * dof), (chi2, dof)
    mean = float(np.asarray(likelihood.mean(params)).ravel()[0]) * 255
    if mean_level is None:  # the mixture's mean is the mean of its draws
        mean_level = float(np.sum(probs * np.arange(256)))
    assert mean == pytest.approx(mean_level, abs=0.5)


def test_logistic_mixture_samples_follow_the_chosen_component_and_coefficients():
    # One component, scales near zero: a sample is the (conditioned) mean's byte.
    likelihood = likelihoods.DiscretizedLogisticMixture(1)
    means = np.array([-0.5, 0.2, 0.6], "float32")
    # green += 0.5 red; blue += 0 red - 0.5 green
    coeffs = np.array([0.5, 0.0, -0.5], "float32")
    params = np.concatenate([[0.0], means, np.full(3, -7.0), np.arctanh(coeffs)])
    params = params.astype("float32").reshape(1, 1, 1, 10)
    sample = np.asarray(likelihood.sample(params, seed=0)).ravel() * 255
    red = -0.5
    green = 0.2 + 0.5 * red
    blue = 0.6 - 0.5 * green
    expected = np.round((np.array([red, green, blue]) + 1) * 127.5)
    np.testing.assert_allclose(sample, expected, atol=1.0)
    mean = np.asarray(likelihood.mean(params)).ravel()
    np.testing.assert_allclose(mean, (np.array([red, green, blue]) + 1) / 2, atol=1e-5)


def test_local_autoregressive_gaussian_is_a_normalised_8bit_distribution():
    """Over the 256 values of the last pixel (no pixel depends on it), the
    probabilities sum to 1 and equal the edge-absorbing discretised Gaussian
    computed independently from its mean and scale."""
    import math

    likelihood = likelihoods.LocalAutoregressiveGaussian()
    rng = np.random.default_rng(0)
    params = (rng.normal(size=(2, 3, 4, likelihood.param_channels(1))) * 0.5).astype(
        "float32"
    )
    x = rng.integers(0, 256, size=(2, 3, 4, 1)).astype("float32")
    candidates = np.repeat(x[None], 256, axis=0)
    candidates[:, :, 2, 3, 0] = np.arange(256)[:, None]
    log_p = np.stack(
        [np.asarray(likelihood.log_prob(c / 255.0, params)) for c in candidates]
    )  # (256, batch)
    shifted = log_p - log_p.max(axis=0)
    probs = np.exp(shifted) / np.exp(shifted).sum(axis=0)
    # The pixel's own distribution, from the parameter layout in the docstring.
    m, s = (np.asarray(t, np.float64) for t in likelihood.split(params)[:2])
    a = [np.asarray(t, np.float64) for t in likelihood.split(params)[2]]
    b = [np.asarray(t, np.float64) for t in likelihood.split(params)[3]]
    centred = np.pad(
        x / 255.0 * 2 - 1, ((0, 0), (2, 2), (2, 2), (0, 0)), constant_values=-1
    )
    mu, log_scale = m[:, 2, 3, 0], s[:, 2, 3, 0]
    for n, (dy, dx) in enumerate(likelihoods.CAUSAL_NEIGHBOURS):
        neighbour = centred[:, 2 + 2 + dy, 2 + 3 + dx, 0]
        mu = mu + a[n][:, 2, 3, 0] * neighbour
        log_scale = log_scale + b[n][:, 2, 3, 0] * neighbour
    sigma = np.exp(np.clip(log_scale, -6, 1))
    cdf = np.vectorize(lambda t: 0.5 * math.erfc(-t / math.sqrt(2)))
    edges = (np.arange(257) - 0.5) * 2 / 255 - 1
    edges[0], edges[-1] = -np.inf, np.inf
    expected = np.diff(cdf((edges[:, None] - mu) / sigma), axis=0)
    np.testing.assert_allclose(probs, expected, atol=2e-5)
    # Unnormalised too: log p(image) is the rest's log-probability plus log P(k).
    rest = log_p - np.log(np.maximum(expected, 1e-300))
    likely = expected > 1e-6
    for i in range(2):
        values = rest[likely[:, i], i]
        np.testing.assert_allclose(values, values[0], atol=5e-3)


def test_local_autoregressive_gaussian_samples_and_means_are_8bit_images():
    likelihood = likelihoods.LocalAutoregressiveGaussian()
    params = (
        np.random.default_rng(1)
        .normal(size=(3, 5, 6, likelihood.param_channels(1)))
        .astype("float32")
    )
    sample = np.asarray(likelihood.sample(params, seed=keras.random.SeedGenerator(0)))
    mean = np.asarray(likelihood.mean(params))
    for image in (sample, mean):
        assert image.shape == (3, 5, 6, 1)
        assert image.min() >= 0.0 and image.max() <= 1.0
        np.testing.assert_allclose(image * 255, np.round(image * 255), atol=1e-3)
    # The mean image is drawn pixel by pixel: each pixel is its own mean,
    # given the pixels before it, rounded to a level. Check it in numpy.
    m, s, a, b = (likelihood.split(params)[i] for i in range(4))
    m = np.asarray(m, np.float64)
    a = [np.asarray(t, np.float64) for t in a]
    canvas = np.full((3, 5 + 4, 6 + 4), -1.0)
    for row in range(5):
        for col in range(6):
            mu = m[:, row, col, 0].copy()
            for n, (dy, dx) in enumerate(likelihoods.CAUSAL_NEIGHBOURS):
                mu += a[n][:, row, col, 0] * canvas[:, 2 + row + dy, 2 + col + dx]
            level = np.round((np.clip(mu, -1, 1) + 1) * 127.5)
            canvas[:, 2 + row, 2 + col] = level / 127.5 - 1
    expected = (canvas[:, 2:7, 2:8] + 1) / 2
    np.testing.assert_allclose(mean[..., 0], expected, atol=1e-5)


def colour_reference(params, image, likelihood):
    """Each sub-pixel's `(mu, log sigma)` of the channel-autoregressive model,
    in numpy, from the parameter layout in the docstring: `(batch, h, w, 3)`."""
    m, s, a, b = (likelihood.split(params)[i] for i in range(4))
    m, s = np.asarray(m, np.float64), np.asarray(s, np.float64)
    a = [np.asarray(t, np.float64) for t in a]
    b = [np.asarray(t, np.float64) for t in b]
    count, height, width, channels = m.shape
    centred = np.pad(
        image * 2.0 - 1.0, ((0, 0), (2, 2), (2, 2), (0, 0)), constant_values=-1
    )
    mu, log_scale = m.copy(), s.copy()
    for row in range(height):
        for col in range(width):
            for c in range(channels):
                neighbours = [
                    centred[:, 2 + row + dy, 2 + col + dx, c]
                    for dy, dx in likelihoods.CAUSAL_NEIGHBOURS
                ] + [
                    centred[:, 2 + row, 2 + col, j] if j < c else np.zeros(count)
                    for j in range(channels - 1)
                ]
                for n, x_n in enumerate(neighbours):
                    mu[:, row, col, c] += a[n][:, row, col, c] * x_n
                    log_scale[:, row, col, c] += b[n][:, row, col, c] * x_n
    return mu, np.clip(log_scale, -6, 1)


def test_colour_pixels_lean_on_the_earlier_channels_of_their_pixel():
    import math

    likelihood = likelihoods.LocalAutoregressiveGaussian(channel_autoregressive=True)
    assert likelihood.param_channels(3) == 3 * (2 + 2 * (10 + 2))
    rng = np.random.default_rng(2)
    params = (rng.normal(size=(2, 4, 5, 78)) * 0.4).astype("float32")
    # An image the model finds plausible (far tails underflow in the reference).
    image = np.asarray(likelihood.sample(params, seed=3), np.float64)
    mu, log_scale = colour_reference(params, image, likelihood)
    # log p(image): every sub-pixel's discretised Gaussian at those parameters.
    cdf = np.vectorize(lambda t: 0.5 * math.erfc(-t / math.sqrt(2)))
    x = image * 2 - 1
    sigma = np.exp(log_scale)
    upper = np.where(image == 1.0, np.inf, x + 1 / 255)
    lower = np.where(image == 0.0, -np.inf, x - 1 / 255)
    p = cdf((upper - mu) / sigma) - cdf((lower - mu) / sigma)
    expected = np.log(np.maximum(p, 1e-300)).reshape(2, -1).sum(axis=1)
    got = np.asarray(likelihood.log_prob(image.astype("float32"), params))
    np.testing.assert_allclose(got, expected, rtol=2e-4)
    # The mean image is drawn sub-pixel by sub-pixel, each its own mean's level
    # given the sub-pixels before it (the earlier channels of its pixel too).
    mean = np.asarray(likelihood.mean(params))
    assert mean.shape == (2, 4, 5, 3)
    again, _ = colour_reference(params, mean.astype(np.float64), likelihood)
    np.testing.assert_allclose(
        mean * 255, np.round((np.clip(again, -1, 1) + 1) * 127.5), atol=1e-3
    )
    # A model that leans on no channel is the old one, with fewer outputs.
    plain = likelihoods.LocalAutoregressiveGaussian()
    assert plain.param_channels(3) == 66
    assert likelihoods.get(
        keras.saving.serialize_keras_object(likelihood)
    ).channel_autoregressive


@pytest.mark.parametrize(
    "likelihood",
    [
        Bernoulli(),
        likelihoods.LocalAutoregressiveGaussian(),
        likelihoods.LocalAutoregressiveGaussian(channel_autoregressive=True),
    ],
    ids=["bernoulli", "local-autoregressive", "local-autoregressive-colour"],
)
def test_coding_gives_the_images_back_at_the_likelihoods_own_code_length(
    likelihood,
):
    import constriction

    rng = np.random.default_rng(3)
    shape = (4, 12, 10, 2)
    x_params = rng.normal(
        scale=0.3, size=(*shape[:3], likelihood.param_channels(shape[-1]))
    ).astype("float32")
    x_params[..., :2] *= 5.0  # logits, or means and log-scales of either sign
    # Images the model finds plausible: drawn from it.
    images = np.round(255 * np.asarray(likelihood.sample(x_params, seed=1)))
    images = images.astype(np.uint8)
    likelihood.check_codable(images)
    seed = rng.integers(1, 2**32, 8, dtype=np.uint32)
    coder = constriction.stream.stack.AnsCoder(seed)
    likelihood.push_images(coder, images, x_params)
    bits = coder.num_bits() - 32 * len(seed)
    np.testing.assert_array_equal(likelihood.pop_images(coder, x_params), images)
    np.testing.assert_array_equal(coder.get_compressed(), seed)
    # The coder codes with the likelihood's own distribution: the code length
    # is -log2 p(x) up to the coder's 24-bit probabilities, the 1/64 rounding
    # of log-scales and the stack's last partial word.
    nats = -float(np.sum(likelihood.log_prob(images / 255.0, x_params)))
    assert bits == pytest.approx(nats / np.log(2.0), rel=0.01, abs=32)


def test_binary_coding_refuses_grey_images_and_factorised_gaussians_cannot_code():
    grey = np.full((1, 4, 4, 1), 128, np.uint8)
    with pytest.raises(ValueError, match="binary images, pixels 0 or 255"):
        Bernoulli().check_codable(grey)
    gaussian = likelihoods.DiscretizedGaussian()
    assert not gaussian.can_code
    with pytest.raises(ValueError, match="cannot code"):
        gaussian.check_codable(grey)
