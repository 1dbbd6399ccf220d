"""What every codec of the package shares: the `.vtfz` file around its payload.

A codec subclasses `Codec` and gives its `KIND` (`container.LOSSLESS` or
`container.LOSSY`), `PARAM_BOUNDS` (the settings a file records, with their
bounds), `channels`, `settings`, `fingerprint`, and

- `encode(images, progress=None) -> container.Encoded`,
- `decode(payload, sizes, progress=None)`, the reverse,
- `check_file(parsed)`: what the file's fields must satisfy for this model
  (sizes, channels), raising `container.CorruptFileError`.

`pack`, `compress`, `from_file` and `decompress_bytes` are the same for
every codec, here.
"""

import numpy as np

from vae_tf.compression import container

__all__ = ["Codec"]


class Codec:
    """Base class of the codecs (`BitsBackCodec`, `LossyCodec`)."""

    KIND: int
    PARAM_BOUNDS: dict = {}

    channels: int
    settings: dict
    fingerprint: bytes

    def encode(self, images, progress=None) -> container.Encoded:
        raise NotImplementedError

    def decode(self, payload, sizes, progress=None):
        raise NotImplementedError

    def check_file(self, parsed: container.Container):
        """Raise a `CorruptFileError` if `parsed` cannot hold this model's images."""

    def pack(self, encoded: container.Encoded) -> bytes:
        """The bytes of a `.vtfz` file holding what `encode` returned."""
        return container.pack(
            container.Container(
                self.KIND,
                self.fingerprint,
                self.channels,
                np.asarray(encoded.sizes),
                self.settings,
                encoded.payload,
            )
        )

    def compress(self, images, progress=None) -> bytes:
        """The bytes of a `.vtfz` file holding `images`."""
        return self.pack(self.encode(images, progress=progress))

    @classmethod
    def from_file(cls, model, data: bytes):
        """The codec a file was written with, and the file's parsed fields.

        Raises:
            CorruptFileError: for a damaged or foreign file, or one of the
                other kind (lossless / lossy).
            WrongModelError: for a file written with another model.
        """
        parsed = container.unpack(data)
        if parsed.kind != cls.KIND:
            other = container.KIND_NAMES[parsed.kind]
            raise container.CorruptFileError(
                f"This is a {other} file; decode it with the model that wrote it "
                f"(this model's codec writes {container.KIND_NAMES[cls.KIND]} files)."
            )
        settings = container.check_params(parsed.params, cls.PARAM_BOUNDS)
        codec = cls(model, **settings)
        container.check_fingerprint(parsed, codec.fingerprint)
        if parsed.channels != codec.channels:
            raise container.CorruptFileError(
                f"The file holds {parsed.channels}-channel images; the model codes "
                f"{codec.channels}-channel ones."
            )
        codec.check_file(parsed)
        return codec, parsed

    @classmethod
    def decompress_bytes(cls, model, data: bytes, progress=None):
        """Decode a `.vtfz` file's bytes with `model`: its images, uint8."""
        codec, parsed = cls.from_file(model, data)
        return codec.decode(parsed.payload, parsed.sizes, progress=progress)
