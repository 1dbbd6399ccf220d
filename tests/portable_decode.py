"""Decode `.vtfz` files in a fresh process; save the images.

Run by tests/test_portable.py under other runtime settings than the process
that encoded (thread counts, oneDNN, XLA), which must be set before
TensorFlow starts. With `REGROUP=N` in the environment, every fixed-point
network call is split into calls of at most N images, as another batch
grouping would. With `FIXED_POINT_XLA=1`, the fixed-point networks run
their XLA graph from the first call (in which the 16-bit products are
float32 digit products), which a long job would turn to; the process
fails if none did.

    python portable_decode.py OUT.npz MODEL.keras FILE.vtfz [MODEL FILE ...]
"""

import os
import sys

import keras
import numpy as np

import vae_tf  # noqa: F401  (registers the model classes)
from vae_tf.compression import BitsBackCodec, LossyCodec, codec, container
from vae_tf.compression.fixed_point import FixedPointNetwork


def regroup(size):
    call = FixedPointNetwork.__call__

    def in_pieces(self, *inputs):
        count = len(inputs[0])
        pieces = [
            call(self, *(x[start : start + size] for x in inputs))
            for start in range(0, count, size)
        ]
        if isinstance(pieces[0], tuple):
            return tuple(np.concatenate(parts) for parts in zip(*pieces))
        return np.concatenate(pieces)

    FixedPointNetwork.__call__ = in_pieces


if __name__ == "__main__":
    if os.environ.get("REGROUP"):
        regroup(int(os.environ["REGROUP"]))
    xla = os.environ.get("FIXED_POINT_XLA") == "1"
    if xla:
        FixedPointNetwork.XLA_AFTER = FixedPointNetwork.XLA_AFTER_VALUES = 0
        FixedPointNetwork.XLA_MIN_BATCH = 1
        FixedPointNetwork.XLA_MAX_SHAPES = 1000
    out, pairs = sys.argv[1], sys.argv[2:]
    decoded = {}
    for i in range(0, len(pairs), 2):
        model = keras.saving.load_model(pairs[i])
        with open(pairs[i + 1], "rb") as file:
            data = file.read()
        lossy = container.unpack(data).kind == container.LOSSY
        images = (LossyCodec if lossy else BitsBackCodec).decompress_bytes(model, data)
        for j, image in enumerate(images):
            decoded[f"file{i // 2}_{j}"] = np.asarray(image)
    if xla:
        networks = [n for c in codec._FIXED_POINT.values() for n in c.values()]
        if not any(callable(network._fused) for network in networks):
            sys.exit("FIXED_POINT_XLA=1, but no network ran its XLA graph.")
    np.savez(out, **decoded)
