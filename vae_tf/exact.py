"""Elementary functions that give the same bits on every machine.

A codec's sender and receiver must compute the same probabilities to the
last bit, or the decoder loses the stream. Two facts of IEEE-754 double
precision make that possible:

1. `+`, `-`, `*`, `/` and `sqrt` are correctly rounded: for given operands
   there is one result, on every conforming machine, whatever its
   instruction set or vector width.
2. `exp`, `log`, `tanh` and `erf` from a maths library are not: libraries
   differ in the last bit, and so do the vector paths numpy picks at run
   time for the CPU it finds (AVX-512, AVX2, none).

So the functions here use only the operations of (1), each as a separate
numpy call on a whole array (nothing is fused into a multiply-add, and no
element's result depends on its neighbours), in a fixed order. They are
accurate to a few units in the last place, which is not the point: the
point is that they are the same function everywhere.

The constants are the classic range-reduction constants of fdlibm's `exp`
and `log` (Sun Microsystems, 1993) and Taylor, arctanh and continued
fraction expansions whose term counts are fixed.

All functions take and return float64 arrays (anything `np.asarray` takes);
NaN stays NaN.
"""

import math

import numpy as np

__all__ = [
    "exp",
    "log",
    "log1p",
    "tanh",
    "erf",
    "erfc",
    "normal_cdf",
    "sigmoid",
    "softplus",
]

# ln 2 split so that k * _LN2_HI is exact for |k| < 2**11 (fdlibm).
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_INV_LN2 = 1.44269504088896338700e00
_EXP_TERMS = [1.0 / math.factorial(n) for n in range(14)]  # |r| <= ln2/2: < 1e-17
_LOG_TERMS = [1.0 / (2 * n + 1) for n in range(12)]  # |s| <= 0.1716: < 1e-18
_SQRT_HALF = 0.7071067811865476
_TWO_OVER_SQRT_PI = 1.1283791670955126
_INV_SQRT_PI = 0.5641895835477563
_ERF_SERIES_LIMIT = 2.0  # Taylor series below, continued fraction above
_ERF_TERMS = 48  # 4**n / n! / (2n + 1) < 1e-20 at n = 47
_ERFC_DEPTH = 60


def _float64(x) -> np.ndarray:
    return np.array(x, dtype=np.float64, copy=True)


def exp(x) -> np.ndarray:
    """`e**x`, float64, elementwise; overflow gives `inf`, underflow 0.

    `x = k ln 2 + r` with `|r| <= ln(2) / 2`, `e**r` by its Taylor series
    to the 13th power (Horner), then scaled by `2**k` exactly (`ldexp`).
    """
    x = _float64(x)
    finite = np.isfinite(x)
    y = np.where(finite, np.clip(x, -746.0, 710.0), 0.0)
    k = np.rint(y * _INV_LN2)
    r = (y - k * _LN2_HI) - k * _LN2_LO
    p = np.full_like(r, _EXP_TERMS[-1])
    for coefficient in reversed(_EXP_TERMS[:-1]):
        p = p * r
        p = p + coefficient
    with np.errstate(over="ignore", under="ignore"):
        out = np.ldexp(p, k.astype(np.int64))
    out = np.where(y >= 710.0, np.inf, out)
    out = np.where(y <= -746.0, 0.0, out)
    # exp(+inf) = inf, exp(-inf) = 0, exp(nan) = nan.
    return np.where(finite, out, np.where(x > 0, np.inf, np.where(x < 0, 0.0, x)))


def log(x) -> np.ndarray:
    """Natural logarithm, float64, elementwise; `log(0) = -inf`, negative NaN.

    `x = m 2**e` with `m` in `[sqrt(1/2), sqrt(2))` (`frexp`, exact), then
    `log m = 2 artanh(s)`, `s = (m - 1) / (m + 1)`, by its series.
    """
    x = _float64(x)
    positive = (x > 0) & np.isfinite(x)
    m, e = np.frexp(np.where(positive, x, 1.0))  # m in [0.5, 1)
    small = m < _SQRT_HALF
    m = np.where(small, m * 2.0, m)
    e = np.where(small, e - 1, e).astype(np.float64)
    out = (e * _LN2_HI + _artanh_series((m - 1.0) / (m + 1.0))) + e * _LN2_LO
    out = np.where(positive, out, np.nan)
    out = np.where(x == 0, -np.inf, out)
    return np.where(x == np.inf, np.inf, out)


def _artanh_series(s):
    """`2 artanh(s)` for `|s| <= 0.1716` by its series."""
    s2 = s * s
    series = np.full_like(s, _LOG_TERMS[-1])
    for coefficient in reversed(_LOG_TERMS[:-1]):
        series = series * s2
        series = series + coefficient
    return (2.0 * s) * series


def log1p(x) -> np.ndarray:
    """`log(1 + x)`, float64, elementwise, accurate for small `x`:
    `2 artanh(x / (2 + x))` for `x` in `[-0.29, 0.41]`, else `log(1 + x)`."""
    x = _float64(x)
    near = (x >= -0.29) & (x <= 0.41)
    xn = np.where(near, x, 0.0)
    return np.where(near, _artanh_series(xn / (2.0 + xn)), log(1.0 + x))


def tanh(x) -> np.ndarray:
    """Hyperbolic tangent, float64, elementwise: `(1 - t) / (1 + t)` with
    `t = exp(-2|x|)`, sign restored."""
    x = _float64(x)
    t = exp(-2.0 * np.abs(x))
    out = (1.0 - t) / (1.0 + t)
    return np.where(x < 0, -out, out)


def _erf_series(x):
    """`erf(x)` by its Taylor series, for `|x| <= _ERF_SERIES_LIMIT`."""
    minus_x2 = -(x * x)
    term = x
    total = x
    for n in range(1, _ERF_TERMS):
        term = term * minus_x2
        term = term / float(n)
        total = total + term / float(2 * n + 1)
    return total * _TWO_OVER_SQRT_PI


def _erfc_fraction(x):
    """`erfc(x)` for `x >= _ERF_SERIES_LIMIT` by its continued fraction
    `exp(-x**2) / sqrt(pi) / (x + (1/2) / (x + 1 / (x + (3/2) / (x + ...))))`,
    evaluated from a fixed depth up."""
    f = x
    for n in range(_ERFC_DEPTH, 0, -1):
        f = x + (0.5 * n) / f
    return exp(-(x * x)) * _INV_SQRT_PI / f


def erf(x) -> np.ndarray:
    """The error function, float64, elementwise."""
    x = _float64(x)
    a = np.abs(x)
    near = a <= _ERF_SERIES_LIMIT
    series = _erf_series(np.where(near, a, 0.0))
    with np.errstate(over="ignore", invalid="ignore"):
        tail = 1.0 - _erfc_fraction(np.where(near, _ERF_SERIES_LIMIT, a))
    tail = np.where(np.isinf(a), 1.0, tail)
    out = np.where(near, series, tail)
    return np.where(x < 0, -out, np.where(np.isnan(x), x, out))


def erfc(x) -> np.ndarray:
    """The complementary error function `1 - erf(x)`, float64, elementwise,
    accurate in the upper tail (the continued fraction directly)."""
    x = _float64(x)
    a = np.abs(x)
    near = a <= _ERF_SERIES_LIMIT
    with np.errstate(over="ignore", invalid="ignore"):
        tail = _erfc_fraction(np.where(near, _ERF_SERIES_LIMIT, a))
    tail = np.where(np.isinf(a), 0.0, tail)
    upper = np.where(near, 1.0 - _erf_series(np.where(near, a, 0.0)), tail)
    out = np.where(x < 0, 2.0 - upper, upper)
    return np.where(np.isnan(x), x, out)


def sigmoid(x) -> np.ndarray:
    """The logistic function `1 / (1 + exp(-x))`, float64, elementwise."""
    x = _float64(x)
    t = exp(-np.abs(x))
    out = 1.0 / (1.0 + t)
    return np.where(x < 0, t / (1.0 + t), out)


def softplus(x) -> np.ndarray:
    """`log(1 + exp(x))`, float64, elementwise, without overflow:
    `max(x, 0) + log(1 + exp(-|x|))`."""
    x = _float64(x)
    return np.maximum(x, 0.0) + log1p(exp(-np.abs(x)))


def normal_cdf(x) -> np.ndarray:
    """The standard normal CDF `(1 + erf(x / sqrt 2)) / 2`, float64."""
    return 0.5 * (1.0 + erf(_float64(x) * _SQRT_HALF))
