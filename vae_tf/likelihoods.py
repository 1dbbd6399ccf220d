"""Observation models `p(x | z)`: what the decoder's output means.

A likelihood turns the decoder's raw output (`x_params`, e.g. logits) into a
log-probability of the data, a mean image to show, and samples. The VAE never
hard-codes a loss: it asks its likelihood.
"""

import keras
from keras import ops

from vae_tf._random import uniform

__all__ = ["Likelihood", "Bernoulli", "get"]


class Likelihood:
    """Base class of observation models.

    Subclasses define how many decoder outputs each image channel needs
    (`param_channels`), the log-probability of a batch, the mean image and
    samples. They are plain serialisable objects, not layers: they own no
    weights.
    """

    def param_channels(self, channels: int) -> int:
        """Number of decoder output channels for an image with `channels`."""
        raise NotImplementedError

    def prepare_targets(self, x, seed=None):
        """Map a batch of images in [0, 1] to the values the model is fit to."""
        return x

    def log_prob(self, x, x_params):
        """Log-probability of each image in nats, shape `(batch,)`."""
        raise NotImplementedError

    def mean(self, x_params):
        """Mean image in [0, 1], shape of the image."""
        raise NotImplementedError

    def sample(self, x_params, seed=None):
        """A sample image, shape of the image."""
        raise NotImplementedError

    def get_config(self) -> dict:
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _sum_per_example(values):
    """Sum every axis but the first: `(batch, ...) -> (batch,)`."""
    return ops.sum(ops.reshape(values, (ops.shape(values)[0], -1)), axis=-1)


@keras.saving.register_keras_serializable(package="vae_tf")
class Bernoulli(Likelihood):
    """Independent Bernoulli pixels parameterised by logits.

    The log-probability of binary pixels `x` in {0, 1} under logits `l` is
    computed from the logits, never from probabilities, so it stays finite for
    any logit:

    ```
    log p(x | l) = x * log sigmoid(l) + (1 - x) * log(1 - sigmoid(l))
                 = x * l - softplus(l)
    ```

    Grey-level images are turned into binary targets by `binarization`:

    - `"dynamic"` (the standard setting for reported MNIST likelihoods): a
      fresh sample `x ~ Bernoulli(intensity)` at every training step, so the
      model sees a new binarisation of each image every epoch. Images that are
      already binary are left unchanged.
    - `"static"`: a fixed binarisation, `x = 1[intensity > 0.5]`.
    - `None`: the intensities are used as targets as they are. On grey values
      this is the "binary cross-entropy on grey values" of many tutorials: the
      Bernoulli mass evaluated at non-binary points is not a normalised
      likelihood, so the number it gives is not a log-likelihood.

    Args:
        binarization: `"dynamic"`, `"static"` or `None`.

    Example:

    >>> likelihood = vae_tf.likelihoods.Bernoulli("dynamic")
    >>> likelihood.log_prob(x, x_logits)  # (batch,)
    """

    BINARIZATIONS = ("dynamic", "static", None)

    def __init__(self, binarization: str | None = "dynamic"):
        if binarization not in self.BINARIZATIONS:
            raise ValueError(
                "binarization must be one of 'dynamic', 'static' or None. "
                f"Received: binarization={binarization!r}"
            )
        self.binarization = binarization

    def param_channels(self, channels: int) -> int:
        return channels

    def prepare_targets(self, x, seed=None):
        if self.binarization == "dynamic":
            return ops.cast(uniform(ops.shape(x), seed) < x, x.dtype)
        if self.binarization == "static":
            return ops.cast(x > 0.5, x.dtype)
        return x

    def log_prob(self, x, x_params):
        x_logits = ops.cast(x_params, "float32")
        x = ops.cast(x, "float32")
        return _sum_per_example(x * x_logits - ops.softplus(x_logits))  # (batch,)

    def mean(self, x_params):
        return ops.sigmoid(x_params)

    def sample(self, x_params, seed=None):
        probs = ops.sigmoid(x_params)
        return ops.cast(uniform(ops.shape(probs), seed) < probs, probs.dtype)

    def get_config(self) -> dict:
        return {"binarization": self.binarization}

    def __repr__(self) -> str:
        return f"Bernoulli(binarization={self.binarization!r})"


def get(identifier) -> Likelihood:
    """Return a likelihood from an instance, a name or a serialised config.

    Args:
        identifier: a `Likelihood`, a name such as `"bernoulli"`, or the dict
            written by `keras.saving.serialize_keras_object`.

    Raises:
        ValueError: for an unknown name or an object that is not a likelihood.
    """
    if isinstance(identifier, Likelihood):
        return identifier
    if isinstance(identifier, str):
        names = {"bernoulli": Bernoulli}
        if identifier.lower() not in names:
            raise ValueError(
                f"Unknown likelihood name. Expected one of {sorted(names)}. "
                f"Received: likelihood={identifier!r}"
            )
        return names[identifier.lower()]()
    if isinstance(identifier, dict):
        obj = keras.saving.deserialize_keras_object(identifier)
        if isinstance(obj, Likelihood):
            return obj
    raise ValueError(
        "Expected a vae_tf likelihood (e.g. vae_tf.Bernoulli()), a name or its "
        f"serialised config. Received: likelihood={identifier!r}"
    )
