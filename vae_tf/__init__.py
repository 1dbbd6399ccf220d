"""vae_tf: variational autoencoders in Keras 3, for generating and compressing
images."""

# First, before anything imports TensorFlow: the `vae-tf` command hides
# TensorFlow's start-up log lines (unless --verbose); other programs keep them.
from vae_tf import _tf_logs

_tf_logs.quiet_for_the_cli()

# ruff: noqa: E402

from vae_tf import (
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
    lossy,
    models,
    presets,
    runs,
    vqvae,
)
from vae_tf.autoregressive import MADEDecoder, PixelCNNDecoder
from vae_tf.conditional import ConditionalVAE
from vae_tf.decoders import ConvDecoder, DenseDecoder
from vae_tf.encoders import ConvEncoder, DenseEncoder
from vae_tf.evaluation import (
    evaluate,
    evaluate_elbo,
    evaluate_iwae,
    latent_diagnostics,
)
from vae_tf.export import export_saved_model
from vae_tf.hierarchical import (
    HierarchicalDecoder,
    HierarchicalEncoder,
    HierarchicalVAE,
)
from vae_tf.likelihoods import (
    Bernoulli,
    DiscretizedGaussian,
    DiscretizedLogisticMixture,
    Likelihood,
    LocalAutoregressiveGaussian,
)
from vae_tf.lossy import LossyVAE
from vae_tf.models import GenerativeModel, NotSupportedError
from vae_tf.vae import VAE
from vae_tf.vqvae import VQVAE

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
    "lossy",
    "models",
    "presets",
    "runs",
    "vqvae",
    "__version__",
]
