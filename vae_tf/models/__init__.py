"""Model families and the interface they share (`GenerativeModel`)."""

from vae_tf.models.base import GenerativeModel, NotSupportedError

__all__ = ["GenerativeModel", "NotSupportedError"]
