"""Image files in, `.vtfz` files out, and back: what `vae-tf compress` runs.

Images are read by `vae_tf.images` (the exact policy for lossless coding, the
convert policy for lossy coding) and written back as PNG. Outputs are written
to a temporary file and renamed into place, so a failure never leaves a
half-written file behind.
"""

import os
import sys
from pathlib import Path

import keras

from vae_tf._files import write_atomically
from vae_tf.compression import container
from vae_tf.compression.bitsback import BitsBackCodec
from vae_tf.compression.lossy_codec import LossyCodec
from vae_tf.images import GREY_TO_RGB, read_images

__all__ = [
    "code_files",
    "compress_files",
    "decode_bytes",
    "decompress_file",
    "PROGRESS_FROM",
]

# Batches of at least this many images show a progress bar.
PROGRESS_FROM = 1000


def _pillow():
    from PIL import Image

    return Image


def _progress(total: int, verbose: bool):
    if not verbose or total < PROGRESS_FROM:
        return None
    bar = keras.utils.Progbar(total, unit_name="image")
    return lambda count: bar.add(count)


def _conversions(paths, notes, verbose: bool) -> dict:
    """`{path: notes}` of the files with notes, printed on stderr if verbose."""
    conversions = {str(path): n for path, n in zip(paths, notes) if n}
    if verbose:
        for path, file_notes in conversions.items():
            print(f"{path}: {'; '.join(file_notes)}", file=sys.stderr)
    return conversions


def code_files(model, paths, lossless: bool = True, verbose: bool = False) -> tuple:
    """Read image files and code them into the bytes of one `.vtfz` file.

    What `compress_files` does before it writes (see it for the rules): every
    file is read first, lossless with `vae_tf.images`' exact policy, lossy
    with its convert policy.

    Returns:
        `(data, images, figures)`: the file's bytes, the images as coded
        (uint8 `(height, width, channels)` each) and `compress_files`' figures.

    Raises:
        FileNotFoundError: an image file does not exist.
        ValueError: the model has no codec for the mode, or a file is refused.
    """
    paths = list(paths)
    codec = BitsBackCodec(model) if lossless else LossyCodec(model)
    images, notes = read_images(paths, (None, None, codec.channels), exact=lossless)
    if lossless and codec.settings.get("grey_flags"):
        # Grey files go to a colour model's codec as grey: it codes them as
        # RGB and gives them back grey.
        for i, image_notes in enumerate(notes):
            if GREY_TO_RGB in image_notes:
                images[i] = images[i][..., :1]
                notes[i] = [n for n in image_notes if n != GREY_TO_RGB]
    if lossless:  # any size: the codec tiles images of other sizes than its model's
        for path, image in zip(paths, images):  # name the file a refusal is about
            try:
                codec.check_images([image])
            except ValueError as error:
                raise ValueError(f"{path}: {error}") from None
    batch = images
    conversions = _conversions(paths, notes, verbose)
    encoded = codec.encode(batch, progress=_progress(len(images), verbose))
    data = codec.pack(encoded)
    pixels = sum(image.shape[0] * image.shape[1] for image in images)
    if lossless:
        extra = {"net_bits_per_dim": encoded.stats["bits_per_dim"]}
    else:
        extra = {"bits_per_pixel": 8 * len(data) / pixels}
    values = sum(image.size for image in images)
    figures = {
        "images": len(images),
        "bytes": len(data),
        "bits_per_dim": 8 * len(data) / values,
        "conversions": conversions,
        **extra,
    }
    return data, list(images), figures


def compress_files(
    model,
    paths,
    output,
    lossless: bool = True,
    verbose: bool = True,
    overwrite: bool = False,
):
    """Compress image files into one `.vtfz` file.

    `lossless` codes with bits-back (`BitsBackCodec`, any trained VAE with a
    supported likelihood; images of other sizes than the model's are coded as
    tiles of its size), otherwise with the lossy codec
    (`LossyCodec`, a trained `LossyVAE`, images of any size). Every file is
    read before anything is written: lossless with `vae_tf.images`' exact
    policy (a file that cannot be given back bit for bit is refused), lossy
    with its convert policy (16-bit samples scaled, transparency composited on
    white, ...; with `verbose`, one line per converted file on stderr).

    Returns:
        A dict of figures: `images`, `bytes`, `bits_per_dim` (whole file),
        `conversions` (`{path: [notes]}` for the files the reader converted or
        turned upright; often empty) and, lossless, the coder's
        `net_bits_per_dim`; lossy, `bits_per_pixel`.

    The folder of `output` is created if needed; an existing `output` is
    replaced only with `overwrite`.

    Raises:
        IsADirectoryError: `output` is a directory (or ends in a slash).
        FileExistsError: `output` exists and `overwrite` is false.
        FileNotFoundError: an image file does not exist.
        ValueError: the model has no codec for the mode, a file is refused,
            or `output` is one of `paths`.
    """
    paths = list(paths)
    if str(output).endswith(("/", os.sep)) or Path(output).is_dir():
        raise IsADirectoryError(f"-o must be a file path, not a directory: {output}")
    output = Path(output)
    inputs = {Path(path).resolve() for path in paths}
    if output.resolve() in inputs:
        raise ValueError(
            f"-o {output} is one of the images to compress: choose another output."
        )
    model.check_coding("lossless" if lossless else "lossy")
    if output.exists() and not overwrite:
        raise FileExistsError(
            f"{output} already exists. Choose another -o or pass --overwrite."
        )
    data, _, figures = code_files(model, paths, lossless, verbose)
    output.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(output, lambda tmp: tmp.write_bytes(data))
    return figures


def decode_bytes(model, data: bytes, progress=None) -> list:
    """The images of a `.vtfz` file's bytes, decoded with `model`.

    Returns:
        uint8 `(height, width, channels)` images, in the order they were coded.

    Raises:
        ValueError: (`CorruptFileError`, `WrongModelError`) a damaged or
            foreign file, or one written with another model.
    """
    lossy = container.unpack(data).kind == container.LOSSY
    kind = "lossy" if lossy else "lossless"
    if kind not in model.coding:
        raise container.WrongModelError(
            f"This is a {kind} file, and this run's model does not code {kind}: "
            "the file was written with another model. Decode it with the run that "
            "wrote it."
        )
    codec, parsed = (LossyCodec if lossy else BitsBackCodec).from_file(model, data)
    return codec.decode(parsed.payload, parsed.sizes, progress=progress)


def decompress_file(model, path, out_dir, overwrite: bool = False, verbose=True):
    """Decode a `.vtfz` file into `out_dir/00000.png`, ... (the input order).

    Nothing is written unless the whole file decodes (and the outputs are
    checked before decoding starts). A grey image coded by a colour model
    comes back as a grey PNG.

    Returns:
        The paths written.
    """
    Image = _pillow()
    path, out_dir = Path(path), Path(out_dir)
    if not path.is_file():
        raise FileNotFoundError(f"No compressed file at {path}.")
    data = path.read_bytes()
    try:
        count = container.unpack(data).num_images
    except ValueError as error:  # damaged or foreign
        raise type(error)(f"{path}: {error}") from None
    if out_dir.exists() and not out_dir.is_dir():
        raise NotADirectoryError(
            f"--output-dir must be a directory. Received: {out_dir}"
        )
    digits = max(5, len(str(count - 1)))
    names = [out_dir / f"{i:0{digits}d}.png" for i in range(count)]
    existing = [name for name in names if name.exists()]
    if existing and not overwrite:
        raise FileExistsError(
            f"{existing[0]} already exists ({len(existing)} of the {len(names)} "
            "outputs do). "
            "Choose another directory or pass --overwrite."
        )
    try:
        images = decode_bytes(model, data, progress=_progress(count, verbose))
    except ValueError as error:  # damaged, foreign or another model's file
        raise type(error)(f"{path}: {error}") from None
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, image in zip(names, images):
        array = image[..., 0] if image.shape[-1] == 1 else image
        write_atomically(
            name, lambda tmp, a=array: Image.fromarray(a).save(tmp, format="PNG")
        )
    return names
