"""Files written whole or not at all: the package's one atomic writer."""

import os
from pathlib import Path

__all__ = ["write_atomically"]


def write_atomically(path, write, suffix: str = ".tmp") -> Path:
    """Write `path` through a temporary file in its folder, then rename it.

    A failure (or a kill) mid-write never leaves a half-written `path`, and
    the temporary file is removed when `write` raises.

    Args:
        path: the file to write.
        write: `write(tmp_path)` writes the content to the temporary path.
        suffix: the temporary name's ending, for writers that choose their
            format by it (e.g. `".keras"`).

    Returns:
        `path`, as a `Path`.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}{suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
