"""The codecs' elementary functions: accurate, and the same bits everywhere."""

import math

import numpy as np
import pytest

from vae_tf import exact

RNG = np.random.default_rng(0)
X = np.concatenate(
    [RNG.normal(0, 3, 20000), RNG.uniform(-40, 40, 10000), np.linspace(-8, 8, 4001)]
)
FUNCTIONS = {
    "exp": (exact.exp, np.exp),
    "tanh": (exact.tanh, np.tanh),
    "erf": (exact.erf, np.vectorize(math.erf)),
    "erfc": (exact.erfc, np.vectorize(math.erfc)),
    "normal_cdf": (
        exact.normal_cdf,
        np.vectorize(lambda v: math.erfc(-v / 2**0.5) / 2),
    ),
    "sigmoid": (exact.sigmoid, lambda v: np.exp(-np.logaddexp(0.0, -v))),
    "softplus": (exact.softplus, lambda v: np.logaddexp(0.0, v)),
}


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_functions_are_accurate_to_a_few_units_in_the_last_place(name):
    ours, reference = FUNCTIONS[name]
    got, want = ours(X), reference(X)
    # Relative error; absolute for the functions bounded by 1 that cross 0 or
    # are computed as a difference near it.
    bounded = name in ("erf", "erfc", "normal_cdf", "tanh")
    scale = np.maximum(np.abs(want), 1.0 if bounded else 1e-300)
    assert np.max(np.abs(got - want) / scale) < 1e-14


def test_erfc_is_accurate_in_its_upper_tail():
    x = np.linspace(2.0, 26.0, 5000)
    want = np.vectorize(math.erfc)(x)
    np.testing.assert_allclose(exact.erfc(x), want, rtol=1e-13)


def test_log_and_log1p_are_accurate_over_the_whole_range():
    x = np.exp(RNG.uniform(-700, 700, 20000))
    np.testing.assert_allclose(exact.log(x), np.log(x), rtol=1e-15)
    t = np.concatenate([RNG.uniform(-0.999, 3, 20000), 10.0 ** -np.arange(1, 300)])
    np.testing.assert_allclose(exact.log1p(t), np.log1p(t), rtol=1e-15)


def test_special_values():
    np.testing.assert_array_equal(
        exact.exp([np.inf, -np.inf, 800.0, -800.0, 0.0]), [np.inf, 0, np.inf, 0, 1]
    )
    np.testing.assert_array_equal(exact.log([0.0, np.inf, 1.0]), [-np.inf, np.inf, 0])
    assert np.isnan(exact.log([-1.0, np.nan])).all()
    np.testing.assert_array_equal(exact.erf([np.inf, -np.inf, 0.0]), [1, -1, 0])
    np.testing.assert_array_equal(exact.sigmoid([-np.inf, np.inf]), [0, 1])
    for function in (exact.exp, exact.tanh, exact.erf, exact.sigmoid, exact.softplus):
        assert np.isnan(function([np.nan])).all(), function.__name__


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_an_elements_result_does_not_depend_on_the_array_around_it(name):
    """The decoder computes a value alone that the encoder computed in a batch."""
    ours, _ = FUNCTIONS[name]
    whole = ours(X)
    pieces = np.concatenate([ours(piece) for piece in np.array_split(X, 13)])
    one_by_one = np.array([ours(value)[()] for value in X[:3000]])
    reshaped = ours(X[:34000].reshape(20, 1700)).ravel()
    assert whole.tobytes() == pieces.tobytes()
    assert whole[:3000].tobytes() == one_by_one.tobytes()
    assert whole[:34000].tobytes() == reshaped.tobytes()


def test_no_maths_library_function_is_called(monkeypatch):
    """Only correctly rounded operations: a library exp, log, tanh or erf
    (whose last bit differs between libraries and CPUs) fails the test."""
    want = {name: ours(X) for name, (ours, _) in FUNCTIONS.items()}
    want["log"] = exact.log(np.abs(X))

    def forbidden(*args, **kwargs):
        raise AssertionError("a maths library function was called")

    for name in ("exp", "exp2", "expm1", "log", "log1p", "log2", "tanh", "power"):
        monkeypatch.setattr(np, name, forbidden)
    for name in ("exp", "expm1", "log", "log1p", "tanh", "erf", "erfc"):
        monkeypatch.setattr(math, name, forbidden)
    for name, (ours, _) in FUNCTIONS.items():
        assert ours(X).tobytes() == want[name].tobytes(), name
    assert exact.log(np.abs(X)).tobytes() == want["log"].tobytes()
