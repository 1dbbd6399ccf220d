"""Compress the model itself: the encoder and decoder as TFLite (LiteRT) files.

Five ways to store the weights:

| `quantize` | weights | activations | converter settings |
| --- | --- | --- | --- |
| `"none"` | float32 | float32 | none |
| `"float16"` | float16 | float32 | `Optimize.DEFAULT`, `supported_types=[float16]` |
| `"dynamic"` | int8 | float32 (int8 inside matmuls) | `Optimize.DEFAULT` |
| `"int8"` | int8 | int8 | `Optimize.DEFAULT`, a representative dataset, int8 builtins |
| `"int16x8"` | int8 | int16 | as `int8`, with the 16x8 builtins |

`int16x8` (TFLite's "16x8" full-integer scheme) is the one for likelihoods
that feel small output errors: the weights are as small as `int8`'s but the
activations keep 16 bits (measured on `mnist-8bit`: +0.4% test -ELBO, against
+16% with int8 activations).

Quantised weights get one scale per output channel, except in a network whose
dense layers are wide and shallow (such as a decoder's first layer from a
32-d latent to 7x7x64 units): their per-channel scales and zero points would
cost 12 to 24 bytes per unit for as few as 32 bytes of weights, so those
networks' dense layers are quantised per tensor (`_per_tensor_dense`).

Each network is converted from a SavedModel by its signature key
(`TFLiteConverter.from_saved_model(path, signature_keys=[...])`), the path
the TFLite team supports; the files take and give float32 (full-integer
models quantise at their input and dequantise at their output). Run them
with the LiteRT interpreter (`ai_edge_litert.interpreter.Interpreter`),
which is what `run` does: `tf.lite.Interpreter` is deprecated.
"""

import os
import shutil
import tempfile
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from vae_tf._validation import check_images

__all__ = [
    "QUANTIZATIONS",
    "export_tflite",
    "TFLiteNetwork",
    "negative_elbo",
    "lite_pair",
    "keras_pair",
]

QUANTIZATIONS = ("none", "float16", "dynamic", "int8", "int16x8")
FULL_INTEGER = ("int8", "int16x8")
# Per-channel parameters cost 12 bytes per unit (a float32 scale and an int64
# zero point; as much again for a full-integer bias). Above this share of a
# network's dense weights, its dense layers are quantised per tensor.
PER_CHANNEL_OVERHEAD_LIMIT = 0.1


def _write_networks_saved_model(networks: dict, model, path):
    """A SavedModel with one signature per network (`model.tflite_networks()`)."""
    archive = keras.export.ExportArchive()
    archive.track(model)
    for key, network in networks.items():
        archive.add_endpoint(
            key, network["function"], input_signature=network["input_signature"]
        )
    archive.write_out(path, verbose=False)


def _per_tensor_dense(network) -> bool:
    """Whether per-channel scales would cost more than
    `PER_CHANNEL_OVERHEAD_LIMIT` of `network`'s dense weights."""

    def sublayers(layer):
        for child in getattr(layer, "layers", ()):
            yield child
            yield from sublayers(child)

    dense = [
        layer for layer in sublayers(network) if isinstance(layer, keras.layers.Dense)
    ]
    weights = sum(int(np.prod(layer.kernel.shape)) for layer in dense)
    units = sum(int(layer.units) for layer in dense)
    return bool(dense) and 12 * units > PER_CHANNEL_OVERHEAD_LIMIT * weights


def _converter(saved_model, key, quantize, representative, per_tensor_dense=False):
    converter = tf.lite.TFLiteConverter.from_saved_model(
        saved_model, signature_keys=[key]
    )
    if quantize == "none":
        return converter
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
        return converter
    # The converter's own switch (no public equivalent in TF 2.21).
    converter._experimental_disable_per_channel_quantization_for_dense_layers = (
        per_tensor_dense
    )
    if quantize in FULL_INTEGER:
        if representative is None:
            raise ValueError(f"{quantize} quantisation needs representative images.")
        converter.representative_dataset = lambda: (
            [sample[None]] for sample in representative
        )
        ops = tf.lite.OpsSet
        converter.target_spec.supported_ops = [
            ops.TFLITE_BUILTINS_INT8
            if quantize == "int8"
            else ops.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
        ]
    return converter


def export_tflite(model, output_dir, quantize: str = "none", images=None) -> dict:
    """Write one `.tflite` file per network of `model` into `output_dir`.

    The networks are the model's own (`model.tflite_networks()`): a VAE's
    `encoder.tflite` and `decoder.tflite`, a lossy codec's `analysis.tflite`
    and `synthesis.tflite`.

    Args:
        model: a built `vae_tf` model (e.g. an unconditional `vae_tf.VAE` with a
            factorised decoder, or a `vae_tf.LossyVAE`).
        output_dir: folder to write (created; files in it are replaced).
        quantize: one of `QUANTIZATIONS`.
        images: float32 images in [0, 1] that calibrate `"int8"` and
            `"int16x8"` (a few hundred training images); the model derives
            each network's calibration inputs from them (e.g. the decoder's
            from their posterior means).

    Returns:
        `{network_name: path}`.

    Raises:
        ValueError: an unknown `quantize`, no images for a full-integer mode,
            or a model that is not built.
        vae_tf.models.NotSupportedError: a model family with no TFLite export.
    """
    if quantize not in QUANTIZATIONS:
        raise ValueError(
            f"quantize must be one of {QUANTIZATIONS}. Received: quantize={quantize!r}"
        )
    if quantize in FULL_INTEGER:
        if images is None or len(images) == 0:
            raise ValueError(
                f"{quantize} quantisation needs representative images (--data-dir)."
            )
        images = np.asarray(images, np.float32)
    else:
        images = None
    networks = model.tflite_networks(images)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".tflite-", dir=output_dir)
    try:
        saved_model = os.path.join(staging, "saved_model")
        _write_networks_saved_model(networks, model, saved_model)
        paths = {}
        for key, network in networks.items():
            converter = _converter(
                saved_model,
                key,
                quantize,
                network["representative"],
                per_tensor_dense=_per_tensor_dense(network["network"]),
            )
            flatbuffer = converter.convert()
            tmp = Path(staging) / f"{key}.tflite"
            tmp.write_bytes(flatbuffer)
            paths[key] = output_dir / f"{key}.tflite"
            os.replace(tmp, paths[key])
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return paths


class TFLiteNetwork:
    """One converted network, run with the LiteRT interpreter.

    Example:

    >>> encoder = TFLiteNetwork("encoder.tflite")
    >>> outputs = encoder(x=images)   # {"z_mean": ..., "z_log_var": ...}
    """

    def __init__(self, path, num_threads: int | None = None):
        from ai_edge_litert.interpreter import Interpreter

        self.path = Path(path)
        self.interpreter = Interpreter(
            model_path=str(self.path), num_threads=num_threads
        )
        signatures = self.interpreter.get_signature_list()
        if len(signatures) != 1:
            raise ValueError(
                f"{self.path} has signatures {sorted(signatures)}; expected one."
            )
        self.key = next(iter(signatures))
        self.runner = self.interpreter.get_signature_runner(self.key)

    def __call__(self, batch_size: int = 256, **inputs) -> dict:
        """Outputs for `inputs` (float32 arrays), run in batches of `batch_size`."""
        n = len(next(iter(inputs.values())))
        outputs = {}
        for start in range(0, n, batch_size):
            chunk = {
                k: np.ascontiguousarray(v[start : start + batch_size], np.float32)
                for k, v in inputs.items()
            }
            for name, value in self.runner(**chunk).items():
                outputs.setdefault(name, []).append(np.asarray(value))
        return {name: np.concatenate(parts) for name, parts in outputs.items()}


def keras_pair(model):
    """`(encode, decode)` over the Keras networks, numpy in and out, as `lite_pair`."""

    def encode(x):
        z_mean, z_log_var = model.encoder(x)
        return np.asarray(z_mean), np.asarray(z_log_var)

    def decode(z):
        return np.asarray(model.decoder(z))

    return encode, decode


def lite_pair(paths, num_threads: int | None = None):
    """`(encode, decode)` callables over the TFLite files from `export_tflite`.

    `encode(x)` returns `(z_mean, z_log_var)` and `decode(z)` the `x_params`,
    as numpy arrays: the same contract as the Keras networks, so
    `negative_elbo` can score either. `encode` checks its images as
    `VAE.encode` does (float, finite, in [0, 1], the model's shape).

    Raises:
        ValueError, TypeError: from `encode`, for images `VAE.encode` refuses.
    """
    encoder = TFLiteNetwork(paths["encoder"], num_threads=num_threads)
    decoder = TFLiteNetwork(paths["decoder"], num_threads=num_threads)

    def encode(x):
        # The TFLite file cannot check its input (LiteRT has no assertions):
        # check here what `VAE.encode` checks.
        x = check_images(x, tuple(encoder.runner.get_input_details()["x"]["shape"][1:]))
        out = encoder(x=x.numpy())
        return out["z_mean"], out["z_log_var"]

    def decode(z):
        return decoder(z=z)["x_params"]

    return encode, decode


def negative_elbo(model, encode, decode, x, eps, batch_size: int = 500) -> float:
    """Mean negative ELBO in nats per image, with any encoder/decoder pair.

    ```
    -ELBO(x) = -log p(x | z) + KL(q(z | x) || p(z)),  z = z_mean + sigma * eps
    ```

    With the same `eps` for a Keras model and its TFLite conversion, the
    difference is what the conversion changed, not sampling noise.

    Args:
        model: the VAE whose likelihood scores `x`.
        encode: `x -> (z_mean, z_log_var)`.
        decode: `z -> x_params`.
        x: float32 images in [0, 1].
        eps: standard normal noise, shape `(len(x), *latent_shape)`.
    """
    from vae_tf.bounds import gaussian_kl

    total = 0.0
    for start in range(0, len(x), batch_size):
        batch = x[start : start + batch_size]
        z_mean, z_log_var = (np.asarray(t) for t in encode(batch))
        z = z_mean + np.exp(0.5 * z_log_var) * eps[start : start + batch_size]
        params = np.asarray(decode(z.astype(np.float32)))
        reconstruction = -np.asarray(model.likelihood.log_prob(batch, params))
        kl = np.asarray(gaussian_kl(z_mean, z_log_var)).reshape(len(z), -1).sum(-1)
        total += float(np.sum(reconstruction + kl))
    return total / len(x)
