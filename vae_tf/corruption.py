"""Corruptions for a denoising VAE: the encoder sees a corrupted image, the
decoder is scored on the clean one.

Training `VAE(..., corruption=GaussianNoise(0.3))` minimises

```
-E_{x~ ~ c(x~ | x)} E_{q(z | x~)}[log p(x | z)] + KL(q(z | x~) || p(z))
```

(the denoising VAE criterion, Im et al. 2017, arXiv:1511.06406), so
`reconstruct(noisy)` returns an estimate of the clean image. Corruption is
applied in training steps only: evaluation reports the ordinary ELBO of clean
images.
"""

import keras
from keras import ops

from vae_tf._random import normal, uniform

__all__ = ["Corruption", "GaussianNoise", "Masking", "get"]


class Corruption:
    """Base class: a random map from images in [0, 1] to images in [0, 1]."""

    def __call__(self, x, seed=None):
        raise NotImplementedError

    def get_config(self) -> dict:
        raise NotImplementedError

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _check_fraction(name, value, high_inclusive=False):
    ok = isinstance(value, (int, float)) and (
        0 < value <= 1 if high_inclusive else 0 < value < 1
    )
    if not ok:
        interval = "(0, 1]" if high_inclusive else "(0, 1)"
        raise ValueError(f"{name} must be in {interval}. Received: {name}={value!r}")
    return float(value)


@keras.saving.register_keras_serializable(package="vae_tf")
class GaussianNoise(Corruption):
    """Add `N(0, stddev^2)` noise to every pixel value, then clip to [0, 1].

    Args:
        stddev: the noise's standard deviation, in units of the [0, 1] range.
    """

    def __init__(self, stddev: float = 0.3):
        if not (isinstance(stddev, (int, float)) and stddev > 0):
            raise ValueError(
                f"stddev must be a positive number. Received: stddev={stddev!r}"
            )
        self.stddev = float(stddev)

    def __call__(self, x, seed=None):
        return ops.clip(x + self.stddev * normal(ops.shape(x), seed=seed), 0.0, 1.0)

    def get_config(self) -> dict:
        return {"stddev": self.stddev}

    def __repr__(self) -> str:
        return f"GaussianNoise(stddev={self.stddev})"


@keras.saving.register_keras_serializable(package="vae_tf")
class Masking(Corruption):
    """Set a random fraction of pixels (all their channels) to `fill`.

    Args:
        rate: probability that a pixel is masked.
        fill: the value masked pixels take (0 is black).
    """

    def __init__(self, rate: float = 0.5, fill: float = 0.0):
        self.rate = _check_fraction("rate", rate)
        if not (isinstance(fill, (int, float)) and 0 <= fill <= 1):
            raise ValueError(f"fill must be in [0, 1]. Received: fill={fill!r}")
        self.fill = float(fill)

    def __call__(self, x, seed=None):
        shape = ops.shape(x)
        keep = uniform((*shape[:-1], 1), seed=seed) >= self.rate  # (b, h, w, 1)
        return ops.where(keep, x, self.fill)

    def get_config(self) -> dict:
        return {"rate": self.rate, "fill": self.fill}

    def __repr__(self) -> str:
        return f"Masking(rate={self.rate}, fill={self.fill})"


def get(identifier):
    """A corruption from an instance, `None` or its serialised config."""
    if identifier is None or isinstance(identifier, Corruption):
        return identifier
    if isinstance(identifier, dict):
        obj = keras.saving.deserialize_keras_object(identifier)
        if isinstance(obj, Corruption):
            return obj
    raise ValueError(
        "corruption must be a vae_tf.corruption.Corruption (e.g. GaussianNoise(0.3), "
        f"Masking(0.5)) or None. Received: corruption={identifier!r}"
    )
