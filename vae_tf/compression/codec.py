"""What every codec of the package shares: the `.vtfz` file around its payload.

A codec subclasses `Codec` and gives its `KIND` (`container.LOSSLESS` or
`container.LOSSY`), `PARAM_BOUNDS` (the settings a file records, with their
bounds), `channels`, `settings`, `fingerprint`, and

- `encode(images, progress=None) -> container.Encoded`,
- `decode(payload, sizes, progress=None)`, the reverse,
- `check_file(parsed)`: what the file's fields must satisfy for this model
  (sizes, channels), raising `container.CorruptFileError`.

Every file records the arithmetic that computed its coding distributions
(the `arithmetic` setting, `ARITHMETICS`): `"fixed-point"` files (16-bit
products, `compression.fixed_point`'s `"int16"`) and `"fixed-point-v1"`
files (the first fixed point, products of activations on the whole grid in
float64, `"grid"`) decode on any machine; `"float"` files (all files from
before the setting) only where the networks compute the same float32 bits
as where they were written.

`pack`, `compress`, `from_file` and `decompress_bytes` are the same for
every codec, here.
"""

import weakref

import numpy as np

from vae_tf.compression import container
from vae_tf.compression.fixed_point import FixedPointNetwork

__all__ = ["ARITHMETICS", "Codec"]

# The arithmetic that computes the coding distributions, as files record it.
ARITHMETICS = {"float": 0, "fixed-point-v1": 1, "fixed-point": 2}
# The fixed-point arithmetics' products (`FixedPointNetwork`'s `products`).
_PRODUCTS = {"fixed-point-v1": "grid", "fixed-point": "int16"}

# Fixed-point networks are frozen and traced once per model and weights:
# model -> {(fingerprint, name): FixedPointNetwork}.
_FIXED_POINT = weakref.WeakKeyDictionary()


class Codec:
    """Base class of the codecs (`BitsBackCodec`, `LossyCodec`)."""

    KIND: int
    PARAM_BOUNDS: dict = {}
    PARAM_DEFAULTS: dict = {}  # settings older files do not record

    channels: int
    settings: dict
    fingerprint: bytes
    CODING = "Lossless"  # for messages: "Lossless coding takes uint8 images"

    def check_images(self, images) -> list:
        """`images` as a list of uint8 `(height, width, channels)` arrays, or a
        clear error. Takes a uint8 array `(N, height, width, channels)` or a
        list of images of any sizes (`(height, width)` for one channel)."""
        if isinstance(images, np.ndarray) and images.ndim == 4:
            images = list(images)
        elif (
            isinstance(images, np.ndarray)
            and images.ndim == 3
            and self.channels == 1
            and images.shape[-1] != 1
        ):
            images = list(images)  # (N, height, width), as keras's MNIST
        if not isinstance(images, (list, tuple)) or not len(images):
            received = (
                f" Received: an array of shape {images.shape}."
                if isinstance(images, np.ndarray)
                else ""
            )
            raise ValueError(
                "There are no images to code: expected a uint8 array (N, height, "
                f"width, {self.channels}) or a list of (height, width, "
                f"{self.channels}) arrays.{received}"
            )
        checked = []
        for i, image in enumerate(images):
            image = np.asarray(image)
            if image.dtype != np.uint8:
                raise ValueError(
                    f"{self.CODING} coding takes uint8 images. Received dtype "
                    f"{image.dtype} (image {i})."
                )
            if image.ndim == 2 and self.channels == 1:
                image = image[..., None]
            if image.ndim != 3 or image.shape[-1] != self.channels:
                raise ValueError(
                    f"This model codes images of shape (height, width, "
                    f"{self.channels}). Received: shape {image.shape} (image {i})."
                )
            if (
                not 1
                <= min(image.shape[:2])
                <= max(image.shape[:2])
                <= (container.MAX_SIDE)
            ):
                raise ValueError(
                    f"Image sides must be 1 to {container.MAX_SIDE} pixels. "
                    f"Received: shape {image.shape} (image {i})."
                )
            checked.append(image)
        return checked

    @staticmethod
    def arithmetic_code(arithmetic) -> int:
        """The file's code for `arithmetic` (a name in `ARITHMETICS` or its code).

        Raises:
            ValueError: an unknown arithmetic.
        """
        if isinstance(arithmetic, str) and arithmetic in ARITHMETICS:
            return ARITHMETICS[arithmetic]
        if (
            isinstance(arithmetic, (int, np.integer))
            and not isinstance(arithmetic, bool)
            and int(arithmetic) in ARITHMETICS.values()
        ):
            return int(arithmetic)
        raise ValueError(
            f"Unknown arithmetic. Expected one of {sorted(ARITHMETICS)}. Received: "
            f"arithmetic={arithmetic!r}"
        )

    @property
    def arithmetic(self) -> str:
        """`"fixed-point"`, `"fixed-point-v1"` or `"float"`: what computes the
        coding distributions (`"float"` for a codec without the setting)."""
        code = self.settings.get("arithmetic", ARITHMETICS["float"])
        return next(name for name, c in ARITHMETICS.items() if c == code)

    def fixed_point_network(
        self, name: str, function, input_signature
    ) -> FixedPointNetwork:
        """`function` (a network of `self.model`, called `name`) in fixed
        point, run in chunks of `FixedPointNetwork.CHUNK` items (a codec's
        networks are per-example); built once per model and weights
        (`self.fingerprint`), so that a codec per file costs no new trace."""
        networks = _FIXED_POINT.setdefault(self.model, {})
        products = _PRODUCTS[self.arithmetic]
        key = (self.fingerprint, name, products)
        if key not in networks:
            networks[key] = FixedPointNetwork(
                function,
                input_signature,
                chunk=FixedPointNetwork.CHUNK,
                products=products,
            )
        return networks[key]

    def mismatch_advice(self) -> str:
        """What a failed end-of-stream check means, for this file's arithmetic."""
        if self.arithmetic == "float":
            return (
                "Either the file is damaged, or this process computes the model's "
                "networks differently from the one that wrote it: the file was "
                "written with float arithmetic (arithmetic='float', or by a vae_tf "
                "from before the setting), "
                "which decodes only with the same TensorFlow build, kind of CPU and "
                "thread settings (e.g. TF_NUM_INTRAOP_THREADS) as the encoder. "
                "Files written with arithmetic='fixed-point' (the default) decode "
                "anywhere."
            )
        return (
            "The file was written with fixed-point arithmetic, which gives the same "
            "bits on every machine; so either the file is damaged, or this vae_tf "
            "or constriction version computes the coding distributions differently "
            "from the one that wrote it: decode with the versions that encoded."
        )

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
                self.settings if encoded.settings is None else encoded.settings,
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
        params = {**cls.PARAM_DEFAULTS, **parsed.params}
        arithmetic = params.get("arithmetic")
        if arithmetic is not None and arithmetic not in ARITHMETICS.values():
            raise container.CorruptFileError(
                f"The file's coding distributions were computed with an arithmetic "
                f"this vae_tf does not know (code {arithmetic}; it knows "
                f"{', '.join(f'{c} = {n}' for n, c in ARITHMETICS.items())}): it was "
                "written by a newer vae_tf, or it is damaged. Decode it with the "
                "version that wrote it."
            )
        settings = container.check_params(params, cls.PARAM_BOUNDS)
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
