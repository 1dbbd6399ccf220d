"""Generation: interpolation, the 2-D latent manifold, PCA, figures."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import make_tiny_vae, random_images

import vae_tf
from vae_tf import generation, plotting


@pytest.mark.parametrize("method", ["linear", "spherical"])
def test_interpolation_endpoints_decode_to_the_reconstructions(tiny_vae, method):
    start, end = random_images(3, seed=1), random_images(3, seed=2)
    path = np.asarray(tiny_vae.interpolate(start, end, num_steps=6, method=method))
    assert path.shape == (3, 6, 28, 28, 1)
    np.testing.assert_allclose(path[:, 0], tiny_vae.reconstruct(start), atol=1e-5)
    np.testing.assert_allclose(path[:, -1], tiny_vae.reconstruct(end), atol=1e-5)


def test_linear_path_is_evenly_spaced_and_slerp_keeps_the_norm():
    a = tf.constant([[3.0, 0.0, 0.0, 0.0]])
    b = tf.constant([[0.0, 3.0, 0.0, 0.0]])
    linear = np.asarray(generation.interpolate_latents(a, b, 5, "linear"))[0]
    np.testing.assert_allclose(np.diff(linear, axis=0), [[-0.75, 0.75, 0, 0]] * 4)
    spherical = np.asarray(generation.interpolate_latents(a, b, 5, "spherical"))[0]
    np.testing.assert_allclose(np.linalg.norm(spherical, axis=-1), 3.0, rtol=1e-5)
    np.testing.assert_allclose(
        spherical[2], [3 / np.sqrt(2), 3 / np.sqrt(2), 0, 0], rtol=1e-5
    )
    # Parallel endpoints: slerp is undefined and falls back to the straight line.
    same = np.asarray(generation.interpolate_latents(a, 2 * a, 3, "spherical"))[0]
    np.testing.assert_allclose(same[:, 0], [3.0, 4.5, 6.0], rtol=1e-5)


def test_gaussian_grid_sits_on_normal_quantiles():
    grid = np.asarray(generation.gaussian_grid(3, (0.1, 0.9))).reshape(3, 3, 2)
    q = 1.2815516  # Phi^-1(0.9)
    np.testing.assert_allclose(grid[0, 0], [-q, q], rtol=1e-5)  # top left
    np.testing.assert_allclose(grid[1, 1], [0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(grid[2, 2], [q, -q], rtol=1e-5)  # bottom right


def test_latent_manifold_decodes_the_grid_in_one_batch():
    keras.utils.set_random_seed(0)
    model = make_tiny_vae(latent_dim=2)
    model.build((None, 28, 28, 1))
    grid = np.asarray(model.latent_manifold(4, (0.05, 0.95)))
    assert grid.shape == (4, 4, 28, 28, 1)
    z = generation.gaussian_grid(4, (0.05, 0.95))
    np.testing.assert_allclose(grid.reshape(16, 28, 28, 1), model.decode(z), atol=1e-6)


def test_latent_manifold_needs_a_2d_latent(tiny_vae):
    with pytest.raises(ValueError, match="needs a 2-D latent vector"):
        tiny_vae.latent_manifold()


def test_pca_finds_the_direction_of_largest_variance():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(500, 5)) * [0.1, 5.0, 0.1, 2.0, 0.1]
    projected, explained = generation.pca_project(z, 2)
    assert projected.shape == (500, 2)
    # The first component is (up to sign) latent dimension 1, then dimension 3.
    assert abs(np.corrcoef(projected[:, 0], z[:, 1])[0, 1]) > 0.99
    assert abs(np.corrcoef(projected[:, 1], z[:, 3])[0, 1]) > 0.99
    assert explained[0] > explained[1] > 0 and explained.sum() <= 1.0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_steps": 1}, "num_steps must be an integer >= 2"),
        ({"method": "cubic"}, "Unknown interpolation method"),
    ],
)
def test_bad_interpolation_arguments_give_clear_errors(tiny_vae, kwargs, message):
    with pytest.raises(ValueError, match=message):
        tiny_vae.interpolate(random_images(2), random_images(2, seed=1), **kwargs)


def test_interpolation_needs_as_many_start_as_end_images(tiny_vae):
    with pytest.raises(ValueError, match="same number of images"):
        tiny_vae.interpolate(random_images(2), random_images(3))


def test_generation_figures_are_written(tmp_path, tiny_vae):
    path = tiny_vae.interpolate(random_images(2), random_images(2, seed=1), 5)
    plotting.plot_interpolations(tmp_path / "interpolation.png", path)
    grid = np.random.default_rng(0).random((3, 3, 28, 28, 1))
    plotting.plot_latent_manifold(tmp_path / "manifold.png", grid)
    z_mean, _ = tiny_vae.encode(random_images(40))
    plotting.plot_latent_scatter(tmp_path / "scatter.png", z_mean, np.arange(40) % 10)
    for name in ("interpolation.png", "manifold.png", "scatter.png"):
        assert (tmp_path / name).stat().st_size > 1000
    with pytest.raises(ValueError, match="one label per latent"):
        plotting.plot_latent_scatter(tmp_path / "bad.png", z_mean, np.arange(3))


def test_sampling_is_deterministic_with_a_seed_for_every_model_kind():
    model = vae_tf.VAE(
        vae_tf.ConvEncoder(latent_channels=2, filters=(8,), residual_blocks=0),
        vae_tf.ConvDecoder(
            (None, None, 1), latent_channels=2, filters=(8,), residual_blocks=0
        ),
        seed=0,
    )
    model.build((None, 28, 28, 1))
    np.testing.assert_array_equal(model.sample(3, seed=7), model.sample(3, seed=7))
    assert not np.allclose(model.sample(3, seed=7), model.sample(3, seed=8))
