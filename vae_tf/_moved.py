"""Old module paths that still import, with a warning, until 0.3.

In 0.2 the model families moved into `vae_tf.models` (`vae_tf.vae` is now
`vae_tf.models.vae`, and so on). Each old module is a stub that calls
`alias`, which makes the old name the new module itself, so every name and
every `isinstance` check still holds.
"""

import importlib
import sys
import warnings

MOVED_MODULES = {
    f"vae_tf.{name}": f"vae_tf.models.{name}"
    for name in ("vae", "conditional", "hierarchical", "lossy", "vqvae")
}


def alias(old: str):
    """Makes module `old` the module it moved to, warning once per import.

    Raises:
      KeyError: `old` is not a moved module.
    """
    new = MOVED_MODULES[old]
    warnings.warn(
        f"{old} moved to {new} in vae_tf 0.2; the old path goes in 0.3.",
        DeprecationWarning,
        stacklevel=3,
    )
    module = importlib.import_module(new)
    sys.modules[old] = module
    return module
