"""Argument checks shared by the model constructors, with Keras-style messages."""

__all__ = ["positive_int", "non_negative_int", "positive_ints"]


def positive_int(name: str, value) -> int:
    """Return `value` if it is a positive int, else raise a ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(
            f"{name} must be a positive integer. Received: {name}={value!r}"
        )
    return value


def non_negative_int(name: str, value) -> int:
    """Return `value` if it is an int >= 0, else raise a ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(
            f"{name} must be a non-negative integer. Received: {name}={value!r}"
        )
    return value


def positive_ints(name: str, values, example: str = "(512, 256)", min_length=0):
    """Return `values` as a tuple if it holds positive ints, else raise a ValueError."""
    try:
        values = tuple(values)
    except TypeError:
        values = None
    if (
        values is None
        or len(values) < min_length
        or any(isinstance(v, bool) or not isinstance(v, int) or v <= 0 for v in values)
    ):
        raise ValueError(
            f"{name} must be a tuple of positive integers such as {example}. "
            f"Received: {name}={values!r}"
        )
    return values
