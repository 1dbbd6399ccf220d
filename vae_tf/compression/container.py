"""The `.vtfz` file format shared by the lossless and the lossy codec.

Everything is little-endian:

| field | bytes | content |
| --- | --- | --- |
| magic | 4 | `b"VTFZ"` |
| version | 1 | `1` |
| kind | 1 | `1` lossless (bits-back), `2` lossy |
| fingerprint | 16 | `model_fingerprint(model)`: which model wrote the file |
| channels | 1 | channels per image (1 or 3) |
| image count | 4 | `N`, at most `MAX_IMAGES` |
| same size | 1 | `1` if all images have one size, else `0` |
| sizes | 4 or 4 N | `(height, width)`, two `uint16`: once, or per image |
| params length | 2 | length `P` of the next field |
| params | P | the codec's settings, compact JSON of integers |
| payload length | 8 | `W`, in 32-bit words |
| payload | 4 W | the entropy coder's words |
| checksum | 4 | CRC-32 of every byte before it |

The reader checks the length of each field against the bytes it has before
reading it, the checksum before it trusts any field, and the totals against
`MAX_IMAGES` and `MAX_VALUES` before anything is allocated, so a truncated,
corrupted or foreign file is a `CorruptFileError` that says what is wrong.
"""

import dataclasses
import hashlib
import json
import struct
import zlib

import keras
import numpy as np

__all__ = [
    "MAGIC",
    "VERSION",
    "LOSSLESS",
    "LOSSY",
    "MAX_IMAGES",
    "MAX_VALUES",
    "CorruptFileError",
    "WrongModelError",
    "Container",
    "Encoded",
    "model_fingerprint",
    "check_fingerprint",
    "pack",
    "unpack",
]

MAGIC = b"VTFZ"
VERSION = 1
LOSSLESS = 1
LOSSY = 2
KIND_NAMES = {LOSSLESS: "lossless", LOSSY: "lossy"}
MAX_IMAGES = 10_000_000
# Pixel values a file may describe in all (about 4 GB of uint8 images).
MAX_VALUES = 1 << 32
MAX_SIDE = 65535

_FIXED = struct.Struct("<4sBB16sBI")  # magic, version, kind, fingerprint, C, N


class CorruptFileError(ValueError):
    """The bytes are not a complete, intact compressed file of this format."""


class WrongModelError(ValueError):
    """The file was written by another model than the one decoding it."""


@dataclasses.dataclass
class Container:
    """The fields of a compressed file.

    Attributes:
        kind: `LOSSLESS` or `LOSSY`.
        fingerprint: 16 bytes naming the model (`model_fingerprint`).
        channels: channels per image.
        sizes: `(N, 2)` int array of `(height, width)` per image.
        params: the codec's settings, a dict of `str` to `int`.
        payload: the coder's `uint32` words.
    """

    kind: int
    fingerprint: bytes
    channels: int
    sizes: np.ndarray
    params: dict
    payload: np.ndarray

    @property
    def num_images(self) -> int:
        return len(self.sizes)


@dataclasses.dataclass
class Encoded:
    """What every codec's `encode` returns and its `pack` takes.

    Attributes:
        payload: the coder's `uint32` words.
        sizes: `(N, 2)` int array of `(height, width)` per image.
        stats: measured figures in bits, e.g. `payload_bits`; the codec's
            docstring lists its own.
        settings: the settings the file records, when the encoder chose some
            for these images (e.g. the bits-back seed's length); `None`: the
            codec's own.
    """

    payload: np.ndarray
    sizes: np.ndarray
    stats: dict
    settings: dict | None = None


def model_fingerprint(model) -> bytes:
    """16 bytes that change with the model's architecture, likelihood or weights.

    A SHA-256 over the class name, the likelihood's config, the encoder's and
    decoder's configs and every weight of both, in order (for a `LossyVAE`:
    its two transforms and its prior). The model's random
    state and optimizer are left out: they do not change what it codes.
    """
    digest = hashlib.sha256()
    digest.update(type(model).__name__.encode())
    networks = []
    for part in model.coding_networks():  # e.g. likelihood, encoder, decoder
        if isinstance(part, keras.layers.Layer):
            networks.append(part)
        else:  # a likelihood: its kind and settings
            digest.update(repr(part).encode())
            digest.update(json.dumps(part.get_config(), sort_keys=True).encode())
    for network in networks:
        config = network.get_config()
        config.pop("name", None)
        digest.update(json.dumps(config, sort_keys=True, default=str).encode())
        for weight in network.weights:
            value = np.ascontiguousarray(np.asarray(weight.numpy()))
            digest.update(str(value.shape).encode())
            digest.update(value.astype("<f4").tobytes())
    return digest.digest()[:16]


def pack(container: Container) -> bytes:
    """The bytes of `container`, checksum included."""
    sizes = np.asarray(container.sizes, dtype=np.int64).reshape(-1, 2)
    if not 1 <= len(sizes) <= MAX_IMAGES:
        raise ValueError(
            f"A file holds 1 to {MAX_IMAGES} images. Received: {len(sizes)} images"
        )
    if sizes.min() < 1 or sizes.max() > MAX_SIDE:
        raise ValueError(
            f"Image sides must be 1 to {MAX_SIDE} pixels. Received sizes from "
            f"{sizes.min()} to {sizes.max()}"
        )
    uniform = bool(np.all(sizes == sizes[0]))
    params = json.dumps(container.params, sort_keys=True, separators=(",", ":"))
    params = params.encode()
    if len(params) > 0xFFFF:
        raise ValueError("The codec's settings are too long for the header.")
    payload = np.asarray(container.payload, dtype="<u4")
    parts = [
        _FIXED.pack(
            MAGIC,
            VERSION,
            container.kind,
            container.fingerprint,
            container.channels,
            len(sizes),
        ),
        struct.pack("<B", int(uniform)),
        (sizes[:1] if uniform else sizes).astype("<u2").tobytes(),
        struct.pack("<H", len(params)),
        params,
        struct.pack("<Q", len(payload)),
        payload.tobytes(),
    ]
    body = b"".join(parts)
    return body + struct.pack("<I", zlib.crc32(body))


class _Reader:
    """Reads fields from `data` front to back; a short read is a clear error."""

    def __init__(self, data: bytes):
        self.data = data
        self.offset = 0

    def take(self, size: int, what: str) -> bytes:
        if size > len(self.data) - self.offset:
            raise CorruptFileError(
                f"The file is truncated: {what} needs {size} bytes at offset "
                f"{self.offset}, but only {len(self.data) - self.offset} remain."
            )
        chunk = self.data[self.offset : self.offset + size]
        self.offset += size
        return chunk


def unpack(data: bytes) -> Container:
    """Parse and check a file's bytes.

    Raises:
        CorruptFileError: for a foreign, truncated or corrupted file, a file
            of an unknown version or kind, or one whose fields are out of
            bounds.
    """
    data = bytes(data)
    if len(data) < len(MAGIC) or data[: len(MAGIC)] != MAGIC:
        raise CorruptFileError(
            f"Not a vae_tf compressed file: it does not start with {MAGIC!r}."
        )
    if len(data) < _FIXED.size + 4:
        raise CorruptFileError(
            f"The file is truncated: {len(data)} bytes, shorter than the "
            f"{_FIXED.size + 4}-byte minimum."
        )
    body, stored = data[:-4], struct.unpack("<I", data[-4:])[0]
    if zlib.crc32(body) != stored:
        raise CorruptFileError(
            "The file is corrupted or truncated: its CRC-32 checksum does not match "
            "its contents."
        )
    reader = _Reader(body)
    _, version, kind, fingerprint, channels, count = _FIXED.unpack(
        reader.take(_FIXED.size, "the header")
    )
    if version != VERSION:
        raise CorruptFileError(
            f"Unsupported file version {version}: this vae_tf reads version {VERSION}."
        )
    if kind not in KIND_NAMES:
        raise CorruptFileError(
            f"Unknown codec kind {kind}: expected {LOSSLESS} (lossless) or "
            f"{LOSSY} (lossy)."
        )
    if channels not in (1, 3):
        raise CorruptFileError(f"Images must have 1 or 3 channels, not {channels}.")
    if not 1 <= count <= MAX_IMAGES:
        raise CorruptFileError(
            f"The image count {count} is out of bounds (1 to {MAX_IMAGES})."
        )
    (uniform,) = struct.unpack("<B", reader.take(1, "the same-size flag"))
    if uniform not in (0, 1):
        raise CorruptFileError(f"The same-size flag is {uniform}; expected 0 or 1.")
    listed = 1 if uniform else count
    sizes = np.frombuffer(reader.take(4 * listed, "the image sizes"), dtype="<u2")
    sizes = sizes.reshape(listed, 2).astype(np.int64)
    if uniform:
        sizes = np.broadcast_to(sizes, (count, 2))
    if sizes.min() < 1:
        raise CorruptFileError("An image size is 0 pixels.")
    if int(np.sum(sizes[:, 0] * sizes[:, 1])) * channels > MAX_VALUES:
        raise CorruptFileError(
            f"The images would hold more than {MAX_VALUES} pixel values."
        )
    (params_length,) = struct.unpack("<H", reader.take(2, "the settings' length"))
    try:
        params = json.loads(reader.take(params_length, "the settings"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CorruptFileError(f"The codec settings are unreadable: {error}") from None
    if not isinstance(params, dict) or not all(
        isinstance(k, str) and type(v) is int for k, v in params.items()
    ):
        raise CorruptFileError("The codec settings must map names to integers.")
    (words,) = struct.unpack("<Q", reader.take(8, "the payload length"))
    if words * 4 != len(body) - reader.offset:
        raise CorruptFileError(
            f"The payload length says {words} words ({words * 4} bytes), but "
            f"{len(body) - reader.offset} bytes remain."
        )
    payload = np.frombuffer(reader.take(words * 4, "the payload"), dtype="<u4")
    return Container(
        kind,
        fingerprint,
        channels,
        sizes,
        params,
        payload.astype(np.uint32),
    )


def check_fingerprint(container: Container, fingerprint: bytes):
    """Raise `WrongModelError` unless the file was written by the model of
    `fingerprint`."""
    if container.fingerprint != fingerprint:
        raise WrongModelError(
            "This file was written with another model (fingerprint "
            f"{container.fingerprint.hex()}); the model given has fingerprint "
            f"{fingerprint.hex()}. Decode it with the model that wrote it."
        )


def check_params(params: dict, bounds: dict) -> dict:
    """Check that `params` has exactly the keys of `bounds`, each within `(lo, hi)`."""
    if set(params) != set(bounds):
        raise CorruptFileError(
            f"The codec settings have keys {sorted(params)}; expected {sorted(bounds)}."
        )
    for key, (low, high) in bounds.items():
        if not low <= params[key] <= high:
            raise CorruptFileError(
                f"The codec setting {key}={params[key]} is out of bounds "
                f"({low} to {high})."
            )
    return params
