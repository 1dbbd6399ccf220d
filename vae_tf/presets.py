"""Named configurations: a model, its data and how to train it.

The CLI (`vae-tf train --preset NAME`), the tutorials and the benchmarks build
their models from here, so a preset's defaults are the measured ones that the
README's results table reports.
"""

import dataclasses
import math
from collections.abc import Callable

import keras

from vae_tf.autoregressive import PixelCNNDecoder
from vae_tf.decoders import ConvDecoder, DenseDecoder
from vae_tf.encoders import ConvEncoder, DenseEncoder
from vae_tf.likelihoods import (
    Bernoulli,
    DiscretizedGaussian,
    DiscretizedLogisticMixture,
    Likelihood,
    LocalAutoregressiveGaussian,
)
from vae_tf.models.conditional import ConditionalVAE
from vae_tf.models.hierarchical import (
    HierarchicalDecoder,
    HierarchicalEncoder,
    HierarchicalVAE,
)
from vae_tf.models.lossy import LossyVAE
from vae_tf.models.vae import VAE
from vae_tf.models.vqvae import VQVAE, CodePrior, VQEncoder

__all__ = [
    "Preset",
    "PRESETS",
    "get",
    "dense_mnist_vae",
    "conditional_mnist_vae",
    "conv_vae",
    "pixelcnn_vae",
    "hierarchical_vae",
    "vq_vae",
]


def _dense_mnist_networks(latent_dim, hidden_units, activation):
    """A dense encoder and the decoder that mirrors it, for 28x28x1 images."""
    encoder = DenseEncoder(
        latent_dim, hidden_units, activation=activation, name="encoder"
    )
    decoder = DenseDecoder(
        (28, 28, 1),
        tuple(reversed(hidden_units)),
        activation=activation,
        name="decoder",
    )
    return encoder, decoder


def dense_mnist_vae(
    latent_dim: int = 32,
    hidden_units: tuple = (512, 256),
    activation: str = "relu",
    binarization: str | None = "dynamic",
    seed: int | None = None,
) -> VAE:
    """A dense VAE for MNIST with a Bernoulli likelihood.

    The decoder mirrors the encoder's `hidden_units`.

    Args:
        latent_dim: size of `z`.
        hidden_units: the encoder's hidden widths, input side first.
        activation: hidden activation.
        binarization: the Bernoulli likelihood's binarisation.
        seed: the VAE's seed.
    """
    return VAE(
        *_dense_mnist_networks(latent_dim, hidden_units, activation),
        Bernoulli(binarization),
        seed=seed,
        name="vae",
    )


def conditional_mnist_vae(
    latent_dim: int = 16,
    hidden_units: tuple = (1024, 512),
    activation: str = "gelu",
    seed: int | None = None,
) -> ConditionalVAE:
    """A dense class-conditional VAE for MNIST digits 0-9 (Bernoulli likelihood)."""
    return ConditionalVAE(
        *_dense_mnist_networks(latent_dim, hidden_units, activation),
        num_classes=10,
        likelihood=Bernoulli("dynamic"),
        seed=seed,
        name="cvae",
    )


def conv_vae(
    image_shape: tuple,
    likelihood: Likelihood,
    latent_dim: int | None = None,
    latent_channels: int | None = None,
    filters: tuple = (32, 64),
    residual_blocks: int = 1,
    activation: str = "gelu",
    free_bits: float = 0.0,
    seed: int | None = None,
) -> VAE:
    """A convolutional VAE; the decoder mirrors the encoder's stages.

    Args:
        image_shape: `(height, width, channels)` of the images.
        likelihood: the observation model.
        latent_dim: size of a latent vector (exclusive with `latent_channels`).
        latent_channels: channels of a spatial latent map (fully convolutional).
        filters: the encoder's stage widths, input side first.
        residual_blocks: residual blocks per stage.
        activation: hidden activation.
        free_bits: a floor in nats on each latent dimension's KL in the loss.
        seed: the VAE's seed.
    """
    height, width, channels = image_shape
    latent = {"latent_dim": latent_dim, "latent_channels": latent_channels}
    return VAE(
        ConvEncoder(
            filters=filters,
            residual_blocks=residual_blocks,
            activation=activation,
            name="encoder",
            **latent,
        ),
        ConvDecoder(
            (
                height if latent_dim else None,
                width if latent_dim else None,
                likelihood.param_channels(channels),
            ),
            filters=tuple(reversed(filters)),
            residual_blocks=residual_blocks,
            activation=activation,
            name="decoder",
            **latent,
        ),
        likelihood,
        free_bits=free_bits,
        seed=seed,
        name="vae",
    )


def pixelcnn_vae(
    image_shape: tuple,
    likelihood: Likelihood,
    latent_dim: int | None = 32,
    encoder_units: tuple = (512, 256),
    filters: int = 32,
    num_layers: int = 4,
    latent_channels: int | None = None,
    encoder_filters: tuple = (32, 64),
    free_bits: float = 0.0,
    activation: str = "gelu",
    seed: int | None = None,
) -> VAE:
    """A VAE whose decoder is a PixelCNN conditioned on the latent.

    With `latent_dim`, a dense encoder (`encoder_units`) gives a latent
    vector and the decoder's conditioning is one dense layer from `z` to an
    image-sized feature map (`PixelCNNDecoder(conditioning_filters=())`).
    With `latent_channels` instead, a `ConvEncoder` (`encoder_filters`, one
    residual block per stage) gives a spatial latent map and a `ConvDecoder`
    mirroring it upsamples `z` to the conditioning map.
    """
    height, width, channels = image_shape
    if (latent_dim is None) == (latent_channels is None):
        raise ValueError(
            "Give exactly one of latent_dim (a dense encoder) and latent_channels "
            f"(a conv encoder). Received: latent_dim={latent_dim!r}, "
            f"latent_channels={latent_channels!r}"
        )
    if latent_channels is None:
        encoder = DenseEncoder(
            latent_dim, encoder_units, activation=activation, name="encoder"
        )
        size = (height, width)
        conditioning = {"latent_dim": latent_dim, "conditioning_filters": ()}
    else:
        encoder = ConvEncoder(
            filters=encoder_filters,
            residual_blocks=1,
            latent_channels=latent_channels,
            activation=activation,
            name="encoder",
        )
        size = (None, None)  # fully convolutional
        conditioning = {
            "latent_channels": latent_channels,
            "conditioning_filters": tuple(reversed(encoder_filters)),
        }
    return VAE(
        encoder,
        PixelCNNDecoder(
            (*size, likelihood.param_channels(channels)),
            filters=filters,
            num_layers=num_layers,
            activation=activation,
            name="decoder",
            **conditioning,
        ),
        likelihood,
        free_bits=free_bits,
        seed=seed,
        name="vae",
    )


def hierarchical_vae(
    image_shape: tuple,
    likelihood: Likelihood,
    filters: tuple = (32, 64),
    latent_channels: tuple = (8, 8),
    residual_blocks: int = 1,
    activation: str = "gelu",
    seed: int | None = None,
) -> HierarchicalVAE:
    """A hierarchical VAE with one latent map per entry of `filters`."""
    levels = dict(
        filters=filters,
        latent_channels=latent_channels,
        residual_blocks=residual_blocks,
        activation=activation,
    )
    return HierarchicalVAE(
        HierarchicalEncoder(name="encoder", **levels),
        HierarchicalDecoder(
            (None, None, likelihood.param_channels(image_shape[-1])),
            name="decoder",
            **levels,
        ),
        likelihood,
        seed=seed,
        name="vae",
    )


def vq_vae(
    image_shape: tuple,
    likelihood: Likelihood,
    num_codes: int = 128,
    code_dim: int = 16,
    filters: tuple = (32, 64),
    residual_blocks: int = 1,
    prior_filters: int = 64,
    prior_layers: int = 4,
    seed: int | None = None,
) -> VQVAE:
    """A convolutional VQ-VAE with a PixelCNN prior over its code map.

    Args:
        image_shape: `(height, width, channels)` of the images.
        likelihood: the observation model.
        num_codes: the codebook's size `K`.
        code_dim: each code vector's size `D`.
        filters: the encoder's stage widths (the decoder mirrors them); the
            code map is `2 ** len(filters)` times smaller than the image.
        residual_blocks: residual blocks per stage.
        prior_filters: hidden channels of the prior.
        prior_layers: masked convolutions of the prior.
        seed: the model's seed.
    """
    channels = image_shape[-1]
    return VQVAE(
        VQEncoder(code_dim, filters, residual_blocks, name="encoder"),
        ConvDecoder(
            (None, None, likelihood.param_channels(channels)),
            latent_channels=code_dim,
            filters=tuple(reversed(filters)),
            residual_blocks=residual_blocks,
            activation="relu",
            name="decoder",
        ),
        likelihood,
        num_codes=num_codes,
        code_dim=code_dim,
        prior=CodePrior(num_codes, prior_filters, prior_layers, name="prior"),
        seed=seed,
        name="vqvae",
    )


@dataclasses.dataclass(frozen=True)
class Preset:
    """A named model and training configuration.

    Attributes:
        name: the preset's name, e.g. `"mnist-dense"`.
        dataset: the dataset it trains on (`vae_tf.data.DATASETS`).
        description: one line for `vae-tf train --help`.
        model_fn: builds a fresh `VAE` from a seed.
        batch_size: training batch size.
        epochs: default number of epochs.
        learning_rate: Adam's (peak) learning rate.
        schedule: `"constant"`, `"cosine"` (cosine decay to zero over the run)
            or `"warmup_cosine"` (linear warm-up over 5% of the steps, then
            cosine decay to zero).
        steps_per_execution: training steps per compiled call.
        jit_compile: compile the training step with XLA.
        binarized_test: evaluate on the test set binarised once (seed 0),
            as for dynamically binarised MNIST.
        conditional: the model is class-conditional: it trains and evaluates
            on `(images, labels)` and samples take labels.
        lmbda: for a lossy-codec preset (`model_fn(seed, lmbda)` builds a
            `LossyVAE`), the default rate-distortion weight; `None` for VAEs.
        train_mosaic: train on random mosaics of `train_mosaic x
            train_mosaic` images (`vae_tf.data.tile_batches`) instead of single
            images; `batch_size` counts images and must be a multiple of
            `train_mosaic ** 2`.
        crop: how an image folder's files become training images by default
            (`--crop`, `vae_tf.image_folders.CROPS`): `"fit"` or `"random"`.
        crops_per_image: the default random crops of each file per epoch.
        flips: random crops are also flipped left to right, each with
            probability 1/2.
        clipnorm: if set, gradients are scaled down to this global norm
            before each update (`keras.optimizers.Adam(global_clipnorm=...)`),
            as CompressAI trains its codecs (norm 1).
    """

    name: str
    dataset: str
    description: str
    model_fn: Callable[[int | None], VAE]
    batch_size: int = 128
    epochs: int = 10
    learning_rate: float = 1e-3
    schedule: str = "constant"
    steps_per_execution: int = 50
    jit_compile: bool = True
    binarized_test: bool = False
    conditional: bool = False
    lmbda: float | None = None
    train_mosaic: int = 1
    crop: str = "fit"
    crops_per_image: int = 1
    flips: bool = False
    clipnorm: float | None = None

    @property
    def lossy(self) -> bool:
        """Whether this preset trains a lossy codec (`LossyVAE`)."""
        return self.lmbda is not None

    def build_model(self, seed: int | None = None, lmbda: float | None = None):
        """A fresh, uncompiled model (for a lossy preset, with weight `lmbda`).

        Raises:
            ValueError: `lmbda` given for a preset that is not a lossy codec.
        """
        if not self.lossy:
            if lmbda is not None:
                raise ValueError(
                    f"lmbda applies to lossy-codec presets only; {self.name} is a "
                    f"VAE. Received: lmbda={lmbda!r}"
                )
            return self.model_fn(seed)
        return self.model_fn(seed, self.lmbda if lmbda is None else lmbda)

    def optimizer(
        self, steps_per_epoch: int, epochs: int
    ) -> keras.optimizers.Optimizer:
        """Adam with this preset's learning-rate schedule over `epochs` epochs."""
        total_steps = max(1, steps_per_epoch * epochs)
        if self.schedule == "constant":
            rate = self.learning_rate
        elif self.schedule == "cosine":
            rate = keras.optimizers.schedules.CosineDecay(
                self.learning_rate, total_steps
            )
        elif self.schedule == "warmup_cosine":
            # A linear warm-up over the first 5% of steps, then cosine decay to 0.
            warmup_steps = max(1, total_steps // 20)
            rate = keras.optimizers.schedules.CosineDecay(
                0.0,
                max(1, total_steps - warmup_steps),
                warmup_target=self.learning_rate,
                warmup_steps=warmup_steps,
            )
        else:
            raise ValueError(
                "Unknown schedule. Expected 'constant', 'cosine' or 'warmup_cosine'. "
                f"Received: schedule={self.schedule!r}"
            )
        return keras.optimizers.Adam(rate, global_clipnorm=self.clipnorm)

    def compile(
        self,
        model,
        num_train_images: int,
        epochs: int,
        batch_size: int,
        distributed: bool = False,
        jit_compile: bool | None = None,
    ):
        """Compile `model` with this preset's optimizer, XLA and steps per execution.

        `distributed`: the model trains under a `tf.distribute` strategy; it
        then runs one step per call (Keras 3.15 fails with several steps per
        call under `MirroredStrategy` on 2 or more replicas: a placeholder is
        left unfed, keras-team/keras#19246) and without XLA (which fails
        there on CPU devices in TF 2.21); `runs.train` may turn XLA back on.
        `jit_compile`: XLA on or off instead of the preset's choice (XLA's
        compile time is only repaid over many steps: a run of a few dozen
        steps is faster without it).
        """
        steps_per_epoch = math.ceil(num_train_images / batch_size)
        if jit_compile is None:
            jit_compile = self.jit_compile and not distributed
        model.compile(
            optimizer=self.optimizer(steps_per_epoch, epochs),
            jit_compile=jit_compile,
            steps_per_execution=1
            if distributed
            else min(self.steps_per_execution, steps_per_epoch),
        )
        return model


# mnist-dense: chosen by measurement (10 epochs of full MNIST, test -ELBO):
# the 784-512-256-32 ReLU reference with Adam 1e-3 at batch 128 reaches 99.9
# nats; cosine decay alone made it worse (101.1); batch 32 helped (98.0).
# Wider layers with GELU, a 64-d latent, batch 64 and a warm-up + cosine
# schedule at 2e-3 reached 93.3; a third hidden layer did not help at 10
# epochs (ReLU 106.0, GELU 95.9, swish 94.5).
def _cifar10_conv_vae(likelihood: Likelihood, seed: int | None) -> VAE:
    """The cifar10-conv network (8x8x16 latent map) with `likelihood`."""
    return conv_vae(
        (32, 32, 3),
        likelihood,
        latent_channels=16,
        filters=(32, 64),
        residual_blocks=1,
        seed=seed,
    )


def _cifar10_preset(name, description, model_fn, **overrides) -> Preset:
    """A CIFAR-10 preset: batch 32, 20 epochs, Adam 1e-3 with warm-up and cosine."""
    settings = dict(
        batch_size=32,
        epochs=20,
        learning_rate=1e-3,
        schedule="warmup_cosine",
        steps_per_execution=20,
    )
    settings.update(overrides)
    return Preset(name, "cifar10", description, model_fn, **settings)


# cifar10-lossy: 4 stride-2 stages of 64 filters with GDN (a 16x smaller
# latent map of 192 channels) and a scale hyperprior (64 channels of side
# information at 32x), chosen for CPU speed (96 filters ran 2.5x slower).
# Measured with 96 latent channels and a factorised prior, 5 epochs: the
# rate saturated at high lmbda (1.3 bpp at 0.03, 1.7 at 0.3) and the curve
# fell 1.7 dB under JPEG at 1 to 2 bpp. lmbda sets the rate; one model per
# point of the curve. Trained on single 32x32 images, whose 2x2 latent maps
# are all border, the model coded 256x256 mosaics 6 to 9 dB worse than single
# images (measured: 20.3 dB against 29.3); it trains on random 4x4 mosaics
# (128x128) instead.
# photo-lossy: the same transforms on photographs at their own resolution,
# with the mean-scale hyperprior (benchmarks/lossy_hyperprior.py measures it
# against the scale hyperprior).
def _lossy_codec(
    seed: int | None, lmbda: float, mean_scale: bool = False, filters: int = 64
):
    return LossyVAE(
        lmbda,
        filters=filters,
        latent_channels=192,
        num_layers=4,
        hyperprior_channels=64,
        mean_scale=mean_scale,
        seed=seed,
    )


# photo-lossy's width follows the rate, as in Minnen et al. 2018 (arXiv:
# 1809.02736), whose high-rate models are wider. Measured on BSD68 at 2
# bits/pixel: 64-filter fine-tunes from the lmbda 0.013 base were 0.78 dB
# under JPEG; a 96-filter base at lmbda 0.15 fine-tuned to 0.05 and 0.08 is
# 0.11 dB over (README). From PHOTO_WIDE_LMBDA up the transforms and the
# hyperprior have 96 filters (1.6x slower to train).
PHOTO_WIDE_LMBDA = 0.03


def _photo_codec(seed: int | None, lmbda: float, mean_scale: bool = True):
    filters = 96 if lmbda >= PHOTO_WIDE_LMBDA else 64
    return _lossy_codec(seed, lmbda, mean_scale=mean_scale, filters=filters)


PRESETS = {
    "mnist-dense": Preset(
        name="mnist-dense",
        dataset="mnist",
        description="dense VAE (784-1024-512-64, GELU), dynamically binarised MNIST, "
        "Bernoulli likelihood",
        model_fn=lambda seed: dense_mnist_vae(64, (1024, 512), "gelu", seed=seed),
        batch_size=64,
        epochs=10,
        learning_rate=2e-3,
        schedule="warmup_cosine",
        binarized_test=True,
    ),
    "mnist-cvae": Preset(
        name="mnist-cvae",
        dataset="mnist",
        description="class-conditional dense VAE (784-1024-512-16, GELU), "
        "dynamically binarised MNIST; sample with --labels",
        model_fn=lambda seed: conditional_mnist_vae(16, (1024, 512), "gelu", seed=seed),
        batch_size=64,
        epochs=10,
        learning_rate=2e-3,
        schedule="warmup_cosine",
        binarized_test=True,
        conditional=True,
    ),
    "mnist-conv": Preset(
        name="mnist-conv",
        dataset="mnist",
        description="convolutional VAE (2 stride-2 stages, 64-d latent), dynamically "
        "binarised MNIST, Bernoulli likelihood",
        model_fn=lambda seed: conv_vae(
            (28, 28, 1),
            Bernoulli("dynamic"),
            latent_dim=64,
            filters=(32, 64),
            residual_blocks=0,
            seed=seed,
        ),
        batch_size=64,
        epochs=20,
        learning_rate=1e-3,
        schedule="warmup_cosine",
        steps_per_execution=20,
        # Measured twice (benchmarks/training_speed.py): 1.41x and 1.44x
        # faster without XLA on CPU (oneDNN's convolutions).
        jit_compile=False,
        binarized_test=True,
    ),
    "mnist-vqvae": Preset(
        name="mnist-vqvae",
        dataset="mnist",
        description="VQ-VAE (a 7x7 map of 128 codes of 16 dimensions, PixelCNN "
        "prior over the codes), dynamically binarised MNIST, Bernoulli likelihood",
        model_fn=lambda seed: vq_vae((28, 28, 1), Bernoulli("dynamic"), seed=seed),
        batch_size=64,
        epochs=10,
        learning_rate=1e-3,
        schedule="warmup_cosine",
        steps_per_execution=20,
        jit_compile=False,
        binarized_test=True,
    ),
    "mnist-pixelcnn": Preset(
        name="mnist-pixelcnn",
        dataset="mnist",
        description="dense encoder (32-d latent) and a 4-layer PixelCNN decoder, "
        "dynamically binarised MNIST, Bernoulli likelihood",
        model_fn=lambda seed: pixelcnn_vae(
            (28, 28, 1), Bernoulli("dynamic"), latent_dim=32, seed=seed
        ),
        batch_size=64,
        epochs=20,
        learning_rate=1e-3,
        schedule="warmup_cosine",
        steps_per_execution=20,
        # Measured: 569 images/s without XLA, 511 with it (its convolutions
        # are faster in TensorFlow's oneDNN kernels on CPU); 20 epochs take
        # about 35 minutes.
        jit_compile=False,
        binarized_test=True,
    ),
    "mnist-8bit": Preset(
        name="mnist-8bit",
        dataset="mnist",
        description="convolutional VAE (32-d latent) on 8-bit grey MNIST, a "
        "Gaussian per pixel whose mean and scale lean on its causal neighbours; "
        "the lossless codec's MNIST model",
        model_fn=lambda seed: conv_vae(
            (28, 28, 1),
            LocalAutoregressiveGaussian(),
            latent_dim=32,
            filters=(32, 64),
            residual_blocks=0,
            seed=seed,
        ),
        batch_size=64,
        epochs=20,
        learning_rate=1e-3,
        schedule="warmup_cosine",
        steps_per_execution=20,
        # Measured twice: 1.40x and 1.42x faster without XLA on CPU; the
        # README's run was trained with it (the same arithmetic).
        jit_compile=False,
    ),
    "cifar10-conv": _cifar10_preset(
        "cifar10-conv",
        "fully convolutional VAE (8x8x16 latent map), CIFAR-10, discretised "
        "logistic mixture likelihood",
        lambda seed: _cifar10_conv_vae(DiscretizedLogisticMixture(5), seed),
    ),
    "cifar10-pixelcnn": _cifar10_preset(
        "cifar10-pixelcnn",
        "conv encoder (8x8x8 latent map) and a 4-layer, 64-filter PixelCNN "
        "decoder, CIFAR-10, discretised logistic mixture likelihood",
        lambda seed: pixelcnn_vae(
            (32, 32, 3),
            DiscretizedLogisticMixture(5),
            latent_dim=None,
            latent_channels=8,
            filters=64,
            num_layers=4,
            seed=seed,
        ),
        # Measured: 105 images/s (XLA is no faster here); 5 epochs took 41
        # minutes and reached 3.33 test bits/dim.
        epochs=5,
        jit_compile=False,
    ),
    "cifar10-conv-mse": _cifar10_preset(
        "cifar10-conv-mse",
        "the cifar10-conv VAE with a fixed-variance Gaussian (sigma = 0.1 of the "
        "pixel range: an MSE loss), discretised so it has bits/dim; the blurry "
        "baseline",
        # The scale is in units of x in [-1, 1].
        lambda seed: _cifar10_conv_vae(DiscretizedGaussian(scale=0.2), seed),
    ),
    "cifar10-hierarchical": _cifar10_preset(
        "cifar10-hierarchical",
        "two-level hierarchical VAE (16x16x8 and 8x8x8 latent maps), CIFAR-10, "
        "discretised logistic mixture likelihood",
        lambda seed: hierarchical_vae(
            (32, 32, 3),
            DiscretizedLogisticMixture(5),
            filters=(32, 64),
            latent_channels=(8, 8),
            residual_blocks=1,
            seed=seed,
        ),
    ),
    "cifar10-lossless": _cifar10_preset(
        "cifar10-lossless",
        "fully convolutional VAE (8x8x16 latent map) on 8-bit RGB, a Gaussian "
        "per sub-pixel whose mean and scale lean on its causal neighbours and on "
        "the earlier channels of its pixel; the lossless codec's colour model",
        lambda seed: conv_vae(
            (32, 32, 3),
            LocalAutoregressiveGaussian(channel_autoregressive=True),
            latent_channels=16,
            filters=(32, 64),
            residual_blocks=1,
            # A local autoregression explains much of an image by itself: without
            # a floor the KL fell to 0.5 nats in an epoch (the latent unused).
            free_bits=0.25,
            seed=seed,
        ),
        epochs=12,
        jit_compile=False,
        # A confident local Gaussian (scales down to e**-6 of the range) gives
        # a surprising pixel tens of thousands of nats: a full run diverged in
        # its first epoch (loss 6e13), another spiked near step 700. Clipped
        # to norm 1, the same steps trained without a spike.
        clipnorm=1.0,
    ),
    "cifar10-lossy": _cifar10_preset(
        "cifar10-lossy",
        "lossy image codec (Balle et al. 2017/2018: GDN transforms, uniform-noise "
        "latents, a scale hyperprior) trained on CIFAR-10 for rate + lmbda * MSE; "
        "set the rate with --lmbda",
        _lossy_codec,
        batch_size=64,  # images: 4 mosaics of 4x4
        # The README's runs: 18 epochs (about 14,000 steps) moved the curve
        # from under JPEG to above it between 0.5 and 2 bits/pixel.
        epochs=18,
        lmbda=0.01,
        train_mosaic=4,
        # Measured (benchmarks/training_speed.py): 1,136 images/s without XLA,
        # 386 with it (the factorised preset).
        jit_compile=False,
    ),
    "photo-lossy": Preset(
        "photo-lossy",
        "photos",
        "lossy image codec for photographs (the cifar10-lossy model) trained on "
        "random 128x128 crops, flipped, of a folder of photos (--image-dir), with "
        "a mean-scale hyperprior; set the rate with --lmbda (96 filters from "
        f"lmbda {PHOTO_WIDE_LMBDA} up, 64 below)",
        _photo_codec,
        batch_size=8,
        epochs=40,
        learning_rate=5e-4,
        schedule="warmup_cosine",
        steps_per_execution=10,
        lmbda=0.01,
        crop="random",
        crops_per_image=32,
        flips=True,
        clipnorm=1.0,
        jit_compile=False,
    ),
}


def get(name: str) -> Preset:
    """The preset called `name`.

    Raises:
        ValueError: for an unknown name, listing the known ones.
    """
    if name not in PRESETS:
        raise ValueError(
            f"Unknown preset. Expected one of {sorted(PRESETS)}. Received: "
            f"preset={name!r}"
        )
    return PRESETS[name]
