"""vae_tf: variational autoencoders in Keras 3, for generating and compressing
images."""

import importlib

# First, before anything imports TensorFlow: the `vae-tf` command hides
# TensorFlow's start-up log lines (unless --verbose); other programs keep them.
from vae_tf import _tf_logs

_tf_logs.quiet_for_the_cli()

# ruff: noqa: E402

from vae_tf import (
    _moved,
    bounds,
    callbacks,
    corruption,
    data,
    distribute,
    evaluation,
    export,
    generation,
    image_folders,
    images,
    likelihoods,
    models,
    presets,
    runs,
)
from vae_tf.autoregressive import MADEDecoder, PixelCNNDecoder
from vae_tf.decoders import ConvDecoder, DenseDecoder
from vae_tf.encoders import ConvEncoder, DenseEncoder
from vae_tf.evaluation import (
    evaluate,
    evaluate_elbo,
    evaluate_iwae,
    latent_diagnostics,
)
from vae_tf.export import export_saved_model
from vae_tf.likelihoods import (
    Bernoulli,
    DiscretizedGaussian,
    DiscretizedLogisticMixture,
    Likelihood,
    LocalAutoregressiveGaussian,
)
from vae_tf.models import GenerativeModel, NotSupportedError
from vae_tf.models.conditional import ConditionalVAE
from vae_tf.models.hierarchical import (
    HierarchicalDecoder,
    HierarchicalEncoder,
    HierarchicalVAE,
)
from vae_tf.models.lossy import LossyVAE
from vae_tf.models.vae import VAE
from vae_tf.models.vqvae import VQVAE

__version__ = "0.2.0"

__all__ = [
    "GenerativeModel",
    "NotSupportedError",
    "VAE",
    "VQVAE",
    "ConditionalVAE",
    "LossyVAE",
    "DenseEncoder",
    "DenseDecoder",
    "ConvEncoder",
    "ConvDecoder",
    "PixelCNNDecoder",
    "MADEDecoder",
    "HierarchicalEncoder",
    "HierarchicalDecoder",
    "HierarchicalVAE",
    "DiscretizedLogisticMixture",
    "DiscretizedGaussian",
    "LocalAutoregressiveGaussian",
    "Likelihood",
    "Bernoulli",
    "evaluate",
    "evaluate_elbo",
    "evaluate_iwae",
    "latent_diagnostics",
    "export_saved_model",
    "bounds",
    "callbacks",
    "corruption",
    "data",
    "distribute",
    "evaluation",
    "export",
    "generation",
    "image_folders",
    "images",
    "likelihoods",
    "models",
    "presets",
    "runs",
    "__version__",
]


def __getattr__(name):
    # The 0.1 module paths (vae_tf.lossy, vae_tf.vqvae, ...), until 0.3.
    if f"vae_tf.{name}" in _moved.MOVED_MODULES:
        return importlib.import_module(f"vae_tf.{name}")
    raise AttributeError(f"module 'vae_tf' has no attribute {name!r}")
