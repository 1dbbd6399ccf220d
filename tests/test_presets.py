"""Preset builders' own checks. Every preset's train, evaluate, sample,
export and codec commands, and its `.keras` round trip, are tested in
`test_every_command.py`."""

import pytest

import vae_tf
from vae_tf import presets


@pytest.mark.parametrize(
    "latent", [{"latent_dim": None}, {"latent_dim": 8, "latent_channels": 4}]
)
def test_pixelcnn_vae_needs_exactly_one_latent_form(latent):
    with pytest.raises(ValueError, match="exactly one of latent_dim"):
        presets.pixelcnn_vae(
            (32, 32, 3), vae_tf.DiscretizedLogisticMixture(2), **latent
        )


@pytest.mark.parametrize(
    "name, clipnorm",
    [("cifar10-lossless", 1.0), ("photo-lossy", 1.0), ("mnist-8bit", None)],
)
def test_the_presets_that_diverged_clip_their_gradients(name, clipnorm):
    """cifar10-lossless (a first epoch diverged to a loss of 6e13) and
    photo-lossy (NaN in an 8th epoch) clip gradients to global norm 1."""
    optimizer = presets.get(name).optimizer(100, 2)
    assert optimizer.global_clipnorm == clipnorm


@pytest.mark.parametrize("lmbda, filters", [(0.003, 64), (0.0299, 64), (0.03, 96)])
def test_photo_lossy_widens_its_transforms_at_high_rates(lmbda, filters):
    """96 filters from lmbda 0.03 up: the 64-filter model stayed under JPEG
    at 2 bits/pixel. Both transforms and the hyperprior take the width, and
    the mean-scale hyperprior stays."""
    model = presets.get("photo-lossy").build_model(0, lmbda=lmbda)
    assert model.lmbda == lmbda and model.mean_scale
    assert model.analysis.filters == model.synthesis.filters == filters
    assert model.hyper_analysis.filters == model.hyper_synthesis.filters == filters
