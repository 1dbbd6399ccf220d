"""Compression with VAEs: real files, decoded back.

- `BitsBackCodec`: lossless, bits-back coding with ANS (`bitsback`).
- `container`: the `.vtfz` file format both codecs write.
"""

from vae_tf.compression import container
from vae_tf.compression.bitsback import BitsBackCodec, supported_likelihood
from vae_tf.compression.container import CorruptFileError, WrongModelError

__all__ = [
    "BitsBackCodec",
    "CorruptFileError",
    "WrongModelError",
    "container",
    "supported_likelihood",
]
