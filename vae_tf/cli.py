"""`vae-tf`: train, evaluate, sample and export VAEs from the shell.

Argument parsing and calls only: every command is one call of a function a
Python user can call too (`vae_tf.runs`, `vae_tf.export`, `vae_tf.plotting`).

Every command hides TensorFlow's own log lines unless given `--verbose`
(`vae_tf._tf_logs`): `main` decides that from the arguments before anything
imports TensorFlow, so this module imports the rest of vae_tf (and
TensorFlow) only inside functions.
"""

import argparse
import contextlib
import json
import sys
from pathlib import Path

import numpy as np

from vae_tf import __version__, _tf_logs

__all__ = ["main", "build_parser"]

# What bad arguments, files or data raise (vae_tf.models.NotSupportedError, a
# model asked for what its family cannot do, is a ValueError; data that no
# source can provide here, vae_tf.data.DataUnavailableError). Any other
# RuntimeError, or a TypeError, is a bug: it keeps its traceback.
USER_ERRORS = (
    ValueError,
    FileNotFoundError,
    FileExistsError,
    NotADirectoryError,
    IsADirectoryError,
)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a positive integer, got {text!r}"
        ) from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a positive number, got {text!r}"
        ) from None
    if not np.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


class _DeprecatedFlag(argparse.Action):
    """An old flag that still works for one version: it stores its value where
    the new flag does and says, on stderr, which flag to use."""

    def __init__(self, option_strings, dest, new_flag: str, **kwargs):
        self.new_flag = new_flag
        super().__init__(option_strings, dest, help=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        print(
            f"vae-tf: {option_string} is deprecated here (it will be removed in "
            f"0.3); use {self.new_flag}. Output flags: -o/--output names a "
            "file, --output-dir a folder.",
            file=sys.stderr,
        )
        setattr(namespace, self.dest, values)


def _add_output_dir_arg(parser, help: str, old_flags=(), required=False):
    """`--output-dir DIR`, and the `old_flags` that meant it before 0.2."""
    parser.add_argument("--output-dir", required=required, help=help)
    if old_flags:
        parser.add_argument(
            *old_flags,
            dest="old_output_dir",
            action=_DeprecatedFlag,
            new_flag="--output-dir",
        )


def _add_data_args(parser):
    from vae_tf import data

    parser.add_argument(
        "--data-dir",
        help="folder with keras-layout mnist.npz / cifar10.npz "
        f"(default: ${data.DATA_DIR_ENV}, "
        "else tensorflow-datasets, else the bundled MNIST subset)",
    )
    parser.add_argument(
        "--source",
        choices=data.SOURCES,
        default="auto",
        help="where to read the data (default: auto)",
    )


def _dumps(payload: dict) -> str:
    """JSON with one key per line; lists (e.g. KL per dimension) stay on theirs."""
    lines = [f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in sorted(payload.items())]
    return "{\n" + ",\n".join(lines) + "\n}"


def _add_max_test_images_arg(parser):
    parser.add_argument(
        "--max-test-images",
        type=_positive_int,
        help="evaluate on the first N test images only (default: all)",
    )


def _add_verbose_arg(parser):
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="show TensorFlow's own log lines (hidden by default, whatever "
        "$TF_CPP_MIN_LOG_LEVEL says)",
    )


_PROGRESS = {"bar": 1, "epochs": 2, "none": 0}  # --progress: fit's verbose


def _train(args):
    from vae_tf import runs

    metrics = runs.train(
        args.preset,
        args.output_dir,
        epochs=args.epochs,
        batch_size=args.batch_size,
        data_dir=args.data_dir,
        source=args.source,
        seed=args.seed,
        verbose=_PROGRESS[args.progress],
        overwrite=args.overwrite,
        lmbda=args.lmbda,
        strategy=args.strategy,
        precision=args.precision,
        image_dir=args.image_dir,
        crop=args.crop,
        crops_per_image=args.crops_per_image,
        init_from=args.init_from,
        jit_compile=None if args.xla is None else args.xla == "on",
        print_data_source=True,
        max_train_images=args.max_train_images,
        max_test_images=args.max_test_images,
        figures=args.figures,
        tensorboard=args.tensorboard,
    )
    if not metrics:  # a worker other than the chief writes nothing
        return
    print(_dumps(metrics))
    print(
        f"Wrote the model, SavedModel, {'figures and ' * args.figures}metrics.json "
        f"to {args.output_dir}",
        file=sys.stderr,
    )


def _evaluate(args):
    from vae_tf import runs

    results = runs.evaluate_run(
        args.run_dir,
        iwae_k=args.iwae_k,
        data_dir=args.data_dir,
        source=args.source,
        seed=args.seed,
        print_data_source=True,
        max_test_images=args.max_test_images,
    )
    print(_dumps(results))


def _sample(args):
    from vae_tf import runs
    from vae_tf.plotting import save_image_grid

    if args.output is None and args.output_dir is None:
        raise ValueError(
            "Say where to write the samples: -o FILE.png (a grid) or --output-dir "
            "DIR (one PNG file per sample)."
        )
    model, _ = runs.load_run(args.run_dir)
    labels = args.labels
    num_samples = args.num_samples or (len(labels) if labels else 64)
    if labels is not None and len(labels) == 1:
        labels = labels[0]
    if args.output_dir:
        paths = runs.write_samples(
            model,
            args.output_dir,
            num_samples,
            seed=args.seed,
            temperature=args.temperature,
            labels=labels,
            overwrite=args.overwrite,
        )
        print(f"Wrote {len(paths)} PNG files to {args.output_dir}", file=sys.stderr)
        return
    output = Path(args.output)
    if output.suffix.lower() != ".png":
        raise ValueError(f"-o must name a .png file. Received: {output}")
    if output.exists() and not args.overwrite:
        raise FileExistsError(
            f"{output} already exists. Choose another -o or pass --overwrite."
        )
    images = np.asarray(
        model.sample(
            num_samples, temperature=args.temperature, seed=args.seed, labels=labels
        )
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    save_image_grid(output, images)
    print(f"Wrote {num_samples} samples to {output}", file=sys.stderr)


def _export(args):
    from vae_tf import runs
    from vae_tf.export import export_saved_model

    model, run_config = runs.load_run(args.run_dir)
    if args.format == "tflite":
        from vae_tf.tflite import FULL_INTEGER, export_tflite

        images = None
        if args.quantize in FULL_INTEGER:
            images = runs.calibration_images(
                run_config["preset"],
                500,
                data_dir=args.data_dir,
                source=args.source,
                print_data_source=True,
            )
        output = args.output_dir or Path(args.run_dir) / f"tflite_{args.quantize}"
        with contextlib.nullcontext() if args.verbose else _tf_logs.filtered_stderr():
            paths = export_tflite(model, output, args.quantize, images=images)
        for name, path in paths.items():
            size = path.stat().st_size
            print(f"Wrote the {name}: {path} ({size} bytes)", file=sys.stderr)
        return
    if args.quantize != "none":
        raise ValueError("--quantize applies to --format tflite only.")
    path = export_saved_model(
        model, args.output_dir or Path(args.run_dir) / "saved_model"
    )
    print(f"Wrote the SavedModel to {path}", file=sys.stderr)


def _compress(args):
    from vae_tf import runs
    from vae_tf.compression.files import compress_files

    model, _ = runs.load_run(args.run_dir)
    figures = compress_files(
        model,
        args.images,
        args.output,
        lossless=args.lossless,
        verbose=True,
        overwrite=args.overwrite,
    )
    print(_dumps(figures))
    print(f"Wrote {args.output}", file=sys.stderr)


def _decompress(args):
    from vae_tf import runs
    from vae_tf.compression.files import decompress_file

    if args.output_dir is None:
        raise ValueError("Say where to write the images: --output-dir DIR.")
    model, _ = runs.load_run(args.run_dir)
    names = decompress_file(model, args.file, args.output_dir, overwrite=args.overwrite)
    images = "image" if len(names) == 1 else "images"
    print(f"Wrote {len(names)} PNG {images} to {args.output_dir}", file=sys.stderr)


def _explore(args):
    from vae_tf.explorer import serve

    serve(
        args.run_dir,
        host=args.host,
        port=args.port,
        data_dir=args.data_dir,
        source=args.source,
        verbose=args.verbose,
    )


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a port number, got {text!r}"
        ) from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port in 0-65535, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The `vae-tf` parser (this imports vae_tf's modules, and TensorFlow)."""
    from vae_tf import presets
    from vae_tf.tflite import QUANTIZATIONS

    parser = argparse.ArgumentParser(
        prog="vae-tf",
        description="Variational autoencoders in Keras: train, evaluate, sample, "
        "export, compress and decompress.",
    )
    parser.add_argument("--version", action="version", version=f"vae-tf {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser(
        "train",
        help="train a preset and write a run directory",
        description="Train a preset; write model.keras, saved_model/, figures and "
        "metrics.json.",
    )
    train.add_argument(
        "--preset",
        default="mnist-dense",
        help="; ".join(f"{p.name}: {p.description}" for p in presets.PRESETS.values())
        + " (default: mnist-dense)",
    )
    train.add_argument(
        "--epochs", type=_positive_int, help="epochs (default: the preset's)"
    )
    train.add_argument(
        "--batch-size", type=_positive_int, help="batch size (default: the preset's)"
    )
    train.add_argument(
        "--lmbda",
        type=_positive_float,
        help="rate-distortion weight of a lossy-codec preset (cifar10-lossy, "
        "photo-lossy): "
        "larger means higher rate and quality (default: the preset's)",
    )
    train.add_argument(
        "--image-dir",
        help="train on this folder of PNG/JPEG files (any count, streamed, cut to "
        "the preset's image size as --crop says; every 20th file is the test set) "
        "instead of the preset's dataset; required by photo-lossy",
    )
    train.add_argument(
        "--crop",
        choices=("fit", "random"),
        help="how --image-dir files become the preset's image size: fit (scaled "
        "so the shorter side fits, centre-cropped: the whole picture, small) or "
        "random (random crops at the file's own resolution, new each epoch: for "
        "a codec that codes full-size photos tile by tile; a file smaller than a "
        "crop is first scaled up to cover it) (default: the preset's: random, "
        "flipped, for photo-lossy; fit for the others)",
    )
    train.add_argument(
        "--crops-per-image",
        type=_positive_int,
        help="with --crop random: crops of each file per epoch (default: the "
        "preset's: 8 for photo-lossy, 1 for the others)",
    )
    train.add_argument(
        "--init-from",
        metavar="RUN",
        help="start from the weights of this finished run of the same preset "
        "(fine-tuning, e.g. a CIFAR-10 codec on your own --image-dir); the "
        "optimizer starts afresh",
    )
    train.add_argument(
        "--strategy",
        choices=("default", "mirrored", "multi-worker"),
        default="default",
        help="tf.distribute strategy: mirrored uses every local GPU; multi-worker "
        "runs one process per machine, configured by TF_CONFIG (default: default)",
    )
    train.add_argument(
        "--precision",
        choices=("float32", "mixed_float16", "mixed_bfloat16"),
        default="float32",
        help="mixed_* runs the networks in half precision and the loss terms in "
        "float32; mixed_float16 for GPUs, mixed_bfloat16 for TPUs and recent "
        "CPUs (default: float32)",
    )
    train.add_argument(
        "--xla",
        choices=("on", "off"),
        help="compile the training step with XLA (default: the preset's choice "
        "on one device, off under a strategy)",
    )
    _add_output_dir_arg(train, "run directory to write", required=True)
    train.add_argument(
        "--max-train-images",
        type=_positive_int,
        help="train on the first N training images (or files) only, e.g. for a "
        "quick trial (default: all)",
    )
    _add_max_test_images_arg(train)
    train.add_argument(
        "--no-figures",
        dest="figures",
        action="store_false",
        help="skip loss_curves.png, reconstructions.png and samples.png (an "
        "autoregressive model draws its figures pixel by pixel: minutes on a CPU)",
    )
    train.add_argument(
        "--tensorboard",
        action="store_true",
        help="log to OUTPUT_DIR/tensorboard: the loss terms per step and, per "
        "epoch, reconstructions, samples and the KL per latent dimension "
        "(view with: tensorboard --logdir OUTPUT_DIR/tensorboard)",
    )
    train.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    train.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a model already in --output-dir",
    )
    train.add_argument(
        "--progress",
        choices=tuple(_PROGRESS),
        default="bar",
        help="training progress on stdout: a bar per epoch, one line per epoch, "
        "or none (default: bar)",
    )
    _add_data_args(train)
    _add_verbose_arg(train)
    train.set_defaults(func=_train)

    evaluate = commands.add_parser(
        "evaluate",
        help="test ELBO and importance-weighted NLL of a run, as JSON",
        description="Print a JSON object with test_negative_elbo_nats and "
        "test_nll_iwae_nats (nats per image).",
    )
    evaluate.add_argument("run_dir", help="a run directory written by `vae-tf train`")
    _add_max_test_images_arg(evaluate)
    evaluate.add_argument(
        "--iwae-k",
        type=_positive_int,
        default=1000,
        help="importance samples per image (default: 1000)",
    )
    evaluate.add_argument(
        "--seed", type=int, default=0, help="seed of the evaluation's samples"
    )
    _add_data_args(evaluate)
    _add_verbose_arg(evaluate)
    evaluate.set_defaults(func=_evaluate)

    sample = commands.add_parser(
        "sample",
        help="draw images from a trained model",
        description="Write prior samples as PNG: a grid (-o FILE.png) or one file "
        "per image (--output-dir DIR). The same seed writes the same images.",
    )
    sample.add_argument("run_dir", help="a run directory written by `vae-tf train`")
    sample.add_argument(
        "-n",
        "--num-samples",
        type=_positive_int,
        help="images (default: 64, or one per --labels entry)",
    )
    where = sample.add_mutually_exclusive_group()
    where.add_argument("-o", "--output", help="PNG file of a grid of the samples")
    _add_output_dir_arg(
        where,
        "folder for one PNG file per sample (sample_00000.png, ...)",
        old_flags=("--out-dir",),
    )
    sample.add_argument(
        "--seed", type=int, default=0, help="seed: the same seed draws the same images"
    )
    sample.add_argument(
        "--temperature",
        type=_positive_float,
        default=1.0,
        help="prior scale; <1 gives more typical images",
    )
    sample.add_argument(
        "--labels",
        type=int,
        nargs="+",
        metavar="LABEL",
        help="classes to draw, for a class-conditional model: one for all, or one "
        "per image",
    )
    sample.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the -o file or sample files already in --output-dir",
    )
    _add_verbose_arg(sample)
    sample.set_defaults(func=_sample)

    export = commands.add_parser(
        "export",
        help="export a run's model",
        description="Write a SavedModel with encode/decode/sample/reconstruct "
        "endpoints, or (--format tflite) encoder.tflite and decoder.tflite, "
        "optionally quantised.",
    )
    export.add_argument("run_dir", help="a run directory written by `vae-tf train`")
    export.add_argument(
        "--format",
        default="saved_model",
        choices=("saved_model", "tflite"),
        help="export format",
    )
    export.add_argument(
        "--quantize",
        default="none",
        choices=QUANTIZATIONS,
        help="TFLite weights: float32 (none), float16, int8 weights (dynamic), "
        "int8 weights and activations (int8) or int8 weights and int16 "
        "activations (int16x8); the last two are calibrated on 500 training "
        "images",
    )
    _add_output_dir_arg(
        export,
        "folder to write (default: RUN_DIR/saved_model, or RUN_DIR/tflite_QUANTIZE)",
        old_flags=("-o", "--output"),
    )
    _add_data_args(export)
    _add_verbose_arg(export)
    export.set_defaults(func=_export)

    compress = commands.add_parser(
        "compress",
        help="compress images into one file with a run's model",
        description="Compress image files (PNG, JPEG, ...) into one .vtfz file. "
        "Without --lossless, a lossy-codec run (cifar10-lossy, any --lmbda) codes "
        "RGB images of any size at its rate. --lossless codes them exactly with "
        "bits-back coding, images of any size as tiles of the model's size (a "
        "Bernoulli model codes binary images, pixels 0 or 255; mnist-8bit 8-bit "
        "greyscale ones; cifar10-lossless 8-bit RGB ones).",
    )
    compress.add_argument("run_dir", help="a run directory written by `vae-tf train`")
    compress.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    compress.add_argument("-o", "--output", required=True, help="the file to write")
    compress.add_argument(
        "--overwrite", action="store_true", help="replace the -o file if it exists"
    )
    compress.add_argument(
        "--lossless", action="store_true", help="bits-back coding, exact round trip"
    )
    _add_verbose_arg(compress)
    compress.set_defaults(func=_compress)

    decompress = commands.add_parser(
        "decompress",
        help="decode a compressed file into PNG images",
        description="Decode a .vtfz file with the run's model that wrote it into "
        "OUTPUT_DIR/00000.png, 00001.png, ... in the order the images were given.",
    )
    decompress.add_argument(
        "run_dir", help="the run directory whose model wrote the file"
    )
    decompress.add_argument("file", help="a .vtfz file written by `vae-tf compress`")
    _add_output_dir_arg(
        decompress,
        "folder for the images (00000.png, ... in the file's order)",
        old_flags=("-o", "--output"),
    )
    decompress.add_argument(
        "--overwrite", action="store_true", help="replace PNG files already there"
    )
    _add_verbose_arg(decompress)
    decompress.set_defaults(func=_decompress)

    explore = commands.add_parser(
        "explore",
        help="look inside a run in the browser (latent sliders, map, codec)",
        description="Serve a local web page for a run: latent sliders, a map of "
        "the test images' latents, interpolations, samples and, for a codec, "
        "uploads coded beside PNG/WebP or JPEG/WebP. Prints the address; "
        "Ctrl+C stops it.",
    )
    explore.add_argument("run_dir", help="a run directory written by `vae-tf train`")
    explore.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default 127.0.0.1: this machine only; 0.0.0.0 "
        "lets anyone who can reach it in)",
    )
    explore.add_argument(
        "--port", type=_port, default=8000, help="port (default 8000; 0: any free)"
    )
    _add_data_args(explore)
    _add_verbose_arg(explore)
    explore.set_defaults(func=_explore)
    return parser


def main(argv=None) -> int:
    """Entry point of the `vae-tf` console script.

    TensorFlow's own log lines are hidden unless the command has `--verbose`
    (`vae_tf._tf_logs.configure_tensorflow_logs`); that is set before
    anything imports TensorFlow, and left as it is when TensorFlow is loaded
    already (e.g. when `main` is called from Python).
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    _tf_logs.configure_tensorflow_logs(show=_tf_logs.asks_for_tensorflow_logs(argv))
    parser = build_parser()
    args = parser.parse_args(argv)
    old = getattr(args, "old_output_dir", None)
    if old is not None:  # a 0.1 folder flag: it means --output-dir
        if args.output_dir is not None and args.output_dir != old:
            parser.error(
                f"argument --output-dir: not allowed with the old folder flag "
                f"({old!r}): give --output-dir only"
            )
        args.output_dir = old
    from vae_tf.data import DataUnavailableError

    try:
        args.func(args)
    except (*USER_ERRORS, DataUnavailableError) as error:
        print(f"vae-tf {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
