"""Model families and the interface they share (`GenerativeModel`).

One module per family: `vae` (the VAE), `conditional` (class-conditional),
`hierarchical` (two latent layers), `lossy` (the lossy codec's model) and
`vqvae` (the VQ-VAE); `base` holds the interface and the shared train step.
"""

from vae_tf.models.base import GenerativeModel, NotSupportedError
from vae_tf.models.conditional import ConditionalVAE
from vae_tf.models.hierarchical import HierarchicalVAE
from vae_tf.models.lossy import LossyVAE
from vae_tf.models.vae import VAE
from vae_tf.models.vqvae import VQVAE

__all__ = [
    "GenerativeModel",
    "NotSupportedError",
    "VAE",
    "ConditionalVAE",
    "HierarchicalVAE",
    "LossyVAE",
    "VQVAE",
]
