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
