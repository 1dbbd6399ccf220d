"""Compression with VAEs: real files, decoded back.

- `LossyCodec`: lossy, a `LossyVAE`'s rounded latents range-coded (`lossy`).
- `BitsBackCodec`: lossless, bits-back coding with ANS (`bitsback`).
- `container`: the `.vtfz` file format both codecs write.
"""

from vae_tf.compression import container
from vae_tf.compression.bitsback import BitsBackCodec
from vae_tf.compression.container import CorruptFileError, WrongModelError
from vae_tf.compression.lossy import LossyCodec

__all__ = [
    "BitsBackCodec",
    "CorruptFileError",
    "LossyCodec",
    "WrongModelError",
    "container",
]
