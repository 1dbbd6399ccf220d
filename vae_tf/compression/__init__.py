"""Compression with VAEs: real files, decoded back.

- `LossyCodec`: lossy, a `LossyVAE`'s rounded latents range-coded
  (`lossy_codec`; the model itself is in `vae_tf.models.lossy`).
- `BitsBackCodec`: lossless, bits-back coding with ANS (`bitsback`).
- `container`: the `.vtfz` file format both codecs write.

Both codecs have one API: `encode(images, progress)` returns a
`container.Encoded` (payload words, image sizes, measured stats), `pack`
turns it into a file's bytes, `compress` does both; `decode(payload, sizes,
progress)` reverses `encode`, and `Codec.decompress_bytes(model, data)`
decodes a file.
"""

from vae_tf.compression import container
from vae_tf.compression.bitsback import BitsBackCodec
from vae_tf.compression.container import CorruptFileError, Encoded, WrongModelError
from vae_tf.compression.lossy_codec import LossyCodec

__all__ = [
    "BitsBackCodec",
    "CorruptFileError",
    "Encoded",
    "LossyCodec",
    "WrongModelError",
    "container",
]
