"""Moved to `vae_tf.models.vqvae` in 0.2; this path warns, and goes in 0.3."""

from vae_tf import _moved

_moved.alias(__name__)
