"""TensorFlow's own log lines: hidden or shown, decided before TensorFlow loads.

TensorFlow's C++ runtime logs to stderr in absl's format
(`I0000 00:00:1795979540.937663   15789 port.cc:153] ...`): while its shared
libraries load (`oneDNN custom operations are on`, `Could not find cuda
drivers on your machine`, each printed twice, after `WARNING: All log
messages before absl::InitializeLog() is called are written to STDERR`), and
later (`failed call to cuInit`, XLA's `Compiled cluster using XLA!`). On a
machine without a GPU they read as failures and are not.

`TF_CPP_MIN_LOG_LEVEL` (read once, when TensorFlow loads) filters the later
lines, but not the ones logged while the libraries load, before TensorFlow
initialises absl's logging (TensorFlow 2.21; absl reads no environment
variable of its own). Those are filtered out of file descriptor 2 while
`import tensorflow` runs: lines in absl's format of severity INFO, WARNING or
ERROR, and absl's notice, are dropped; anything else written then (a FATAL
line, a Python warning) is passed on. The TFLite converter prints a line of
its settings (`fully_quantize: 0, inference_type: 6, ...`) without absl, at
any log level: `filtered_stderr` around a conversion drops it the same way.

The `vae-tf` command runs this first: `vae_tf/__init__.py` calls
`quiet_for_the_cli` before it imports TensorFlow, which acts only when the
process is the command (the `vae-tf` console script, or `python -m
vae_tf.cli`). A program that imports vae_tf keeps TensorFlow's logging as it
is.
"""

import contextlib
import logging
import os
import re
import sys
import tempfile

__all__ = [
    "configure_tensorflow_logs",
    "filtered_stderr",
    "is_tensorflow_noise",
    "asks_for_tensorflow_logs",
    "cli_arguments",
    "quiet_for_the_cli",
]

# A line of absl's log format below FATAL: severity letter, MMDD, time (before
# absl is initialised, `0000 00:00:<seconds since 1970>`), thread, file:line].
_ABSL_LINE = re.compile(r"^[IWE]\d{4} [\d:.]+\s+\d+ \S+:\d+\] ")
_ABSL_NOTICE = "WARNING: All log messages before absl::InitializeLog() is called"
_CONVERTER_LINE = re.compile(r"^fully_quantize: \d+, inference_type: ")


def is_tensorflow_noise(line: str) -> bool:
    """Whether `line` is an absl log line below FATAL, absl's pre-init notice, or
    the TFLite converter's settings line."""
    return bool(
        _ABSL_LINE.match(line)
        or line.startswith(_ABSL_NOTICE)
        or _CONVERTER_LINE.match(line)
    )


@contextlib.contextmanager
def filtered_stderr():
    """Drop `is_tensorflow_noise` lines written to file descriptor 2 meanwhile.

    The lines are held in a temporary file and the others written to stderr
    when the block ends (also when it raises).
    """
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr to filter
        yield
        return
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            text = held.read().decode("utf-8", errors="replace")
            kept = [
                line
                for line in text.splitlines(keepends=True)
                if not is_tensorflow_noise(line)
            ]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


def configure_tensorflow_logs(show: bool = False) -> bool:
    """Hide (or show) TensorFlow's log lines in this process, then import it.

    Hidden: `TF_CPP_MIN_LOG_LEVEL=3` (only FATAL lines), the lines logged
    while TensorFlow's libraries load filtered out of stderr, and the Python
    loggers `tensorflow` and `absl` (tensorflow-datasets logs through it) at
    ERROR. Shown: `TF_CPP_MIN_LOG_LEVEL=0`, overriding a value set in the
    environment, and the loggers left as they are.

    Args:
        show: show every log line instead of hiding them.

    Returns:
        Whether the setting was applied: `False` when TensorFlow was imported
        already (it reads its settings when it loads), and nothing changed.
    """
    if "tensorflow" in sys.modules:
        return False
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0" if show else "3"
    with contextlib.nullcontext() if show else filtered_stderr():
        import tensorflow  # noqa: F401
    if show:
        return True
    for name in ("tensorflow", "absl"):
        logging.getLogger(name).setLevel(logging.ERROR)
    return True


def asks_for_tensorflow_logs(argv: list) -> bool:
    """Whether the command in `argv` has `--verbose`, before any parsing.

    Read before TensorFlow (and so the argument parser, which lists the
    presets) is imported. The top level has no `--verbose` and no option
    taking a value, so the command is the first argument not starting with
    `-`; after it, `--verbose` or a prefix argparse accepts for it (no other
    option of a command starts with `--v`), up to a `--`.
    """
    words = iter(argv)
    for word in words:
        if not word.startswith("-"):
            break  # the command
    for word in words:
        if word == "--":
            return False
        if len(word) > 2 and "--verbose".startswith(word):
            return True
    return False


def cli_arguments():
    """The command's arguments if this process is the `vae-tf` command, else
    `None`.

    The console script runs as `.../vae-tf ARGS`; `python -m vae_tf ARGS` (or
    `vae_tf.cli`) shows in `sys.orig_argv` (while the package is imported,
    `sys.argv[0]` is still `"-m"`).
    """
    if os.path.basename(sys.argv[0]) in ("vae-tf", "vae-tf.exe"):
        return sys.argv[1:]
    original = list(getattr(sys, "orig_argv", []))
    for index, word in enumerate(original[:-1]):
        if word == "-m":
            return (
                original[index + 2 :]
                if original[index + 1] in ("vae_tf", "vae_tf.cli")
                else None
            )
    return None


def quiet_for_the_cli() -> None:
    """Hide TensorFlow's log lines if this process is the `vae-tf` command.

    Called by `vae_tf/__init__.py` before it imports TensorFlow; does nothing
    in any other program, or when TensorFlow is loaded already.
    """
    argv = cli_arguments()
    if argv is not None:
        configure_tensorflow_logs(show=asks_for_tensorflow_logs(argv))
