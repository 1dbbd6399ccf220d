"""A class-conditional VAE (Sohn et al. 2015): choose the class of what you draw."""

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from vae_tf._validation import (
    assert_images,
    assert_positive,
    class_ids,
    one_label_each,
)
from vae_tf.models.base import NotSupportedError
from vae_tf.models.vae import VAE, float32

__all__ = ["ConditionalVAE"]


@keras.saving.register_keras_serializable(package="vae_tf")
class ConditionalVAE(VAE):
    """A VAE whose encoder and decoder both see the class label `y`.

    ```
    q(z | x, y) = N(mu(x, y), sigma^2(x, y)),   p(x | z, y),   p(z) = N(0, I)
    loss(x, y) = -E_q[log p(x | z, y)] + beta * KL(q(z | x, y) || p(z))
    ```

    The label enters as a one-hot vector: the encoder gets it as
    `num_classes` constant image channels appended to `x`, the decoder
    appended to `z` (as extra channels of a latent map). Any vae_tf encoder
    and decoder work unchanged. With the class given to the decoder, `z` is
    free to hold the rest (style, stroke width, ...), and
    `sample(n, labels=...)` draws images of the chosen classes.

    Train on `(images, labels)` batches, e.g. `vae_tf.data.load(...,
    with_labels=True)`. `encode`, `decode`, `reconstruct`, `interpolate` and
    `sample` take `labels`; so do the SavedModel's endpoints.

    Args:
        encoder: a vae_tf encoder (its input has `channels + num_classes`
            channels).
        decoder: a vae_tf decoder.
        num_classes: number of classes; labels are ints in `[0, num_classes)`.
        likelihood, beta, seed, free_bits, **kwargs: as for `vae_tf.VAE`.

    Example:

    >>> cvae = vae_tf.ConditionalVAE(
    ...     vae_tf.DenseEncoder(16), vae_tf.DenseDecoder((28, 28, 1)),
    ...     num_classes=10)
    >>> cvae.compile(optimizer="adam")
    >>> cvae.fit(vae_tf.data.load("mnist", "train", with_labels=True), epochs=10)
    >>> sevens = cvae.sample(16, labels=7, seed=0)
    """

    def __init__(self, encoder, decoder, num_classes: int, likelihood=None, **kwargs):
        super().__init__(encoder, decoder, likelihood, **kwargs)
        if not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
            raise ValueError(
                "num_classes must be an integer >= 2. Received: "
                f"num_classes={num_classes!r}"
            )
        self.num_classes = int(num_classes)
        if self.autoregressive:
            raise ValueError(
                "ConditionalVAE does not support an autoregressive decoder. "
                f"Received: decoder={self.decoder!r}"
            )

    def _build_networks(self, image_shape):
        # The label enters as num_classes extra channels of x and of z.
        height, width, channels = image_shape
        self.encoder(
            keras.KerasTensor((None, height, width, channels + self.num_classes))
        )
        *spatial, latent_channels = self.latent_shape
        self.decoder(
            keras.KerasTensor((None, *spatial, latent_channels + self.num_classes))
        )

    @staticmethod
    def _append(tensor, labels):
        """Append one-hot `labels` `(batch, K)` as channels of `tensor`."""
        shape = ops.shape(tensor)
        extra = labels
        for _ in range(len(tensor.shape) - 2):
            extra = extra[:, None]
        extra = extra * ops.ones((*shape[:-1], 1), dtype=tensor.dtype)
        return ops.concatenate([tensor, extra], axis=-1)

    def _need(self, labels):
        if labels is None:
            raise ValueError(
                "A ConditionalVAE needs the class labels: train and evaluate it on "
                "(images, labels) batches and pass labels= to its methods."
            )
        return labels

    def posterior(self, x, training=False, labels=None):
        # float32 under a mixed policy too, as VAE.posterior
        return float32(
            *self.encoder(self._append(x, self._need(labels)), training=training)
        )

    def decode_params(self, z, training=False, labels=None, seed=None):
        return float32(
            self.decoder(self._append(z, self._need(labels)), training=training)
        )

    def generate_params(self, num_samples, temperature=1.0, seed=None, labels=None):
        return super().generate_params(
            num_samples, temperature, seed=seed, labels=self._need(labels)
        )

    def prepare_labels(self, labels):
        """One-hot float labels `(batch, num_classes)` from int class ids.

        The ids are checked in any mode (`vae_tf._validation.class_ids`):
        eagerly a `ValueError`, in a traced step or an exported SavedModel an
        assertion, both saying "labels must be in [0, num_classes)".
        """
        ids = class_ids(self._need(labels), self.num_classes)  # (batch,)
        return ops.one_hot(ids, self.num_classes)

    def check_batch(self, *batch):
        """Check one `(x, labels[, sample_weight])` batch; return it.

        Used on `fit`'s, `evaluate`'s and `predict`'s data before the compiled
        step: images in [0, 1], one class id in `[0, num_classes)` per image.
        """
        if len(batch) < 2 or batch[1] is None:
            self._need(None)
        x = assert_images(batch[0], "x")
        ids = one_label_each(class_ids(batch[1], self.num_classes), x)  # (batch,)
        return (x, ids, *batch[2:])

    def check_labels(self, labels, batch: int, name: str = "labels"):
        """Check int labels eagerly; one label is repeated for the whole batch.

        Raises:
            ValueError: missing labels, a wrong count, non-integers or labels
                outside `[0, num_classes)`.
        """
        if labels is None:
            raise ValueError(
                f"This ConditionalVAE needs {name}: one int in [0, "
                f"{self.num_classes}) per image, or one for all."
            )
        values = np.asarray(labels)
        if values.ndim == 0:
            values = np.full((batch,), values)
        if values.ndim == 2 and values.shape[-1] == 1:
            values = values[:, 0]
        elif values.ndim >= 2:  # e.g. one-hot: refused, with what is expected
            class_ids(tf.constant(values), self.num_classes, name)
        if values.dtype.kind not in "iuf":
            raise ValueError(
                f"{name} must be integer class ids. Received: {name}.dtype="
                f"{values.dtype}"
            )
        if values.ndim != 1 or len(values) != batch:
            raise ValueError(
                f"{name} must hold one label per image ({batch}) or a single "
                f"label. Received: {name}.shape={values.shape}"
            )
        return ops.one_hot(
            class_ids(tf.constant(values), self.num_classes, name), self.num_classes
        )

    coding = ()  # bits-back would need the labels too

    def check_coding(self, kind: str):
        raise NotSupportedError(
            f"A ConditionalVAE cannot code {kind} files: its codes would need the "
            "labels too. Use an unconditional run (e.g. mnist-8bit)."
        )

    def example_samples(self, count: int = 64, seed: int = 0):
        """One row per class: `count // 8` draws of each of (up to) 8 classes."""
        classes = np.repeat(np.arange(min(self.num_classes, 8)), max(1, count // 8))
        images = self.sample(len(classes), seed=seed, labels=classes)
        return images, "Samples: one class per row, z ~ N(0, I)"

    def add_endpoints(self, archive):
        """`encode(x, labels)`, `decode(z, labels)`, `sample(labels, temperature,
        seed)` (one image per label) and `reconstruct(x, labels)`; labels are
        int32 class ids `(batch,)`, checked in the graph as in Python."""
        image_spec, latent_spec, temperature_spec, seed_spec = self._endpoint_specs()
        label_spec = tf.TensorSpec((None,), tf.int32, name="labels")

        def encode(x, labels):
            x, labels = self.check_batch(x, labels)
            z_mean, z_log_var = self.posterior(x, labels=self.prepare_labels(labels))
            return {"z_mean": z_mean, "z_log_var": z_log_var}

        def decode(z, labels):
            labels = self.prepare_labels(one_label_each(labels, z, "latent"))
            return {
                "x_mean": self.likelihood.mean(self.decode_params(z, labels=labels))
            }

        def sample(labels, temperature, seed):
            x_params = self.generate_params(
                tf.shape(labels)[0],
                assert_positive(temperature, "temperature"),
                seed=seed,
                labels=self.prepare_labels(labels),
            )
            return {"x_mean": self.likelihood.mean(x_params)}

        def reconstruct(x, labels):
            x, labels = self.check_batch(x, labels)
            x_params = self.reconstruct_params(x, labels=self.prepare_labels(labels))
            return {"x_mean": self.likelihood.mean(x_params)}

        archive.track(self)
        archive.add_endpoint("encode", encode, input_signature=[image_spec, label_spec])
        archive.add_endpoint(
            "decode", decode, input_signature=[latent_spec, label_spec]
        )
        archive.add_endpoint(
            "sample", sample, input_signature=[label_spec, temperature_spec, seed_spec]
        )
        archive.add_endpoint(
            "reconstruct", reconstruct, input_signature=[image_spec, label_spec]
        )

    def tflite_networks(self, images=None) -> dict:
        raise NotSupportedError(
            "TFLite export covers unconditional VAEs (z in, x_params out); a "
            "ConditionalVAE's networks also take the labels."
        )

    def call(self, inputs, training=False):
        """Reconstruct `(images, int_labels)`: the decoded mean at `z = z_mean`."""
        if not isinstance(inputs, (tuple, list)) or len(inputs) != 2:
            self._need(None)
        x, labels = inputs
        labels = self.prepare_labels(labels)
        return self.likelihood.mean(
            self.reconstruct_params(x, training=training, labels=labels)
        )

    @property
    def _default_save_signature(self):
        # Keras traces `self(images)` as a SavedModel's default signature; a
        # conditional model also needs labels, and `vae_tf.export` writes its
        # own endpoints, so there is no default one.
        return None

    def get_config(self):
        config = super().get_config()
        config["num_classes"] = self.num_classes
        return config
