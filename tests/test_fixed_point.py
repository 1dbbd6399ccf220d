"""Networks in exact fixed point: close to the float network, the same bits
for any batch grouping, and exact sums whatever the order."""

import copy
import itertools

import numpy as np
import pytest
import tensorflow as tf

from vae_tf import exact, presets
from vae_tf.compression import fixed_point
from vae_tf.compression.fixed_point import FixedPointNetwork, to_grid
from vae_tf.models import NotSupportedError

# How far each kind of product may take an untrained network's outputs from
# the float network's: 16-bit activations and weights of 2**17 in L1 norm
# per output ("int16") round more than activations on the full grid and
# 13-bit or finer weights ("grid"). Largest differences measured on these
# networks: 3.4e-3 ("int16"), 1.7e-4 ("grid").
TOLERANCE = {"grid": 2e-3, "int16": 1e-2}


@pytest.fixture(
    scope="module",
    params=[
        (name, products)
        for name in ("mnist-dense", "mnist-8bit", "mnist-conv")
        for products in fixed_point.PRODUCTS
    ],
    ids="-".join,
)
def networks(request):
    name, products = request.param
    model = presets.get(name).build_model(0)
    model.build((None, 28, 28, 1))
    posterior = FixedPointNetwork(
        model.posterior,
        [tf.TensorSpec([None, 28, 28, 1], tf.float32)],
        products=products,
    )
    decoder = FixedPointNetwork(
        model.decoder,
        [tf.TensorSpec([None, *model.latent_shape], tf.float32)],
        products=products,
    )
    return model, posterior, decoder


def images(count, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (count, 28, 28, 1)) / 255.0).astype("float32")


def test_the_fixed_point_network_computes_the_float_network(networks):
    model, posterior, decoder = networks
    x = images(8)
    z_mean, z_log_var = posterior(x)
    want_mean, want_log_var = model.posterior(x)
    tolerance = TOLERANCE[posterior.products]
    np.testing.assert_allclose(z_mean, want_mean, atol=tolerance)
    np.testing.assert_allclose(z_log_var, want_log_var, atol=tolerance)
    z = to_grid(np.random.default_rng(1).normal(size=(8, *model.latent_shape)))
    np.testing.assert_allclose(
        decoder(z), model.decoder(z.astype("float32")), atol=2.5 * tolerance
    )


def test_the_lossy_codecs_decoder_networks_run_in_fixed_point():
    """GDN's weights are computed from others (gamma = gamma_root**2): folded
    once, then quantized like any weight; its 1x1 convolution is a product too."""
    model = presets.get("cifar10-lossy").build_model(0)
    model.build((None, 64, 64, 3))
    rng = np.random.default_rng(0)
    y = np.round(rng.normal(0, 3, (2, 4, 4, model.latent_channels)))
    z = np.round(rng.normal(0, 3, (2, 2, 2, model.hyperprior_channels)))
    for (network, x), products in itertools.product(
        ((model.synthesis, y), (model.hyper_synthesis, z)), fixed_point.PRODUCTS
    ):
        spec = tf.TensorSpec([None, None, None, x.shape[-1]])
        fixed = FixedPointNetwork(network, [spec], products=products)
        want = np.asarray(network(x.astype("float32")))
        assert np.std(want) > 0.1  # the outputs vary: the comparison means something
        # The root mean square difference, relative to the outputs' spread,
        # and the largest difference. Measured: "grid" 3.2e-4 and 4.1e-4 at
        # most; "int16" 1.9e-2 and 2.8e-2 (GDN's squared inputs share one
        # exponent per item, so an untrained synthesis of wide-ranging
        # latents rounds its small ones coarsely; trained photo codecs lose
        # at most 0.014 dB, README).
        rms_bound, largest = {"grid": (1e-3, 2e-3), "int16": (4e-2, 6e-2)}[products]
        rms = np.sqrt(np.mean((fixed(x) - want) ** 2)) / np.std(want)
        assert rms < rms_bound
        np.testing.assert_allclose(fixed(x), want, atol=largest)
        assert fixed(x[:1]).tobytes() == fixed(x)[:1].tobytes()
        assert _same_bits(fixed(x), fixed.reference(x))
        forced = with_xla(fixed)
        assert _same_bits(forced(x), fixed.reference(x))
        assert callable(forced._fused)  # XLA ran, not the plain graph


def _same_bits(a, b):
    a = a if isinstance(a, tuple) else (a,)
    b = b if isinstance(b, tuple) else (b,)
    return len(a) == len(b) and all(
        x.dtype == y.dtype and x.tobytes() == y.tobytes() for x, y in zip(a, b)
    )


def with_xla(network):
    """A copy of `network` that runs its elementwise runs through XLA from
    its first call, at any batch size."""
    forced = copy.copy(network)
    forced.XLA_AFTER, forced.XLA_MIN_BATCH, forced.XLA_MAX_SHAPES = 0, 1, 64
    forced._fused, forced._fused_shapes, forced._items = None, set(), 0
    return forced


@pytest.mark.parametrize("xla", [False, True], ids=["graph", "xla"])
def test_the_graph_gives_the_interpreters_bits(networks, xla):
    """The compiled float64 graph (and the one whose elementwise runs XLA
    compiles) against the op-by-op numpy specification, on images and on
    latents with halves of grid steps (rounding ties)."""
    _, posterior, decoder = networks
    assert posterior._graph is not None and decoder._graph is not None
    if xla:
        posterior, decoder = with_xla(posterior), with_xla(decoder)
    x = images(16, seed=5)
    assert _same_bits(posterior(x), posterior.reference(x))
    z_mean, _ = posterior(x)
    ties = z_mean + 0.5 * fixed_point._STEP
    for z in (z_mean, ties, 40 * z_mean):
        assert _same_bits(decoder(z), decoder.reference(z))
    if xla:  # XLA ran: it is not the plain graph's bits by default
        assert callable(posterior._fused) and callable(decoder._fused)


def test_a_network_turns_to_xla_only_for_long_jobs_with_few_batch_sizes():
    """The plain graph until `XLA_AFTER` items have run; then XLA for
    batches of `XLA_MIN_BATCH` or more, of at most `XLA_MAX_SHAPES` sizes;
    the same bits on every path."""
    model = presets.get("mnist-8bit").build_model(0)
    model.build((None, 28, 28, 1))
    decoder = FixedPointNetwork(
        model.decoder, [tf.TensorSpec([None, *model.latent_shape], tf.float32)]
    )
    decoder.XLA_AFTER, decoder.XLA_MIN_BATCH, decoder.XLA_MAX_SHAPES = 6, 2, 2
    rng = np.random.default_rng(3)
    z = to_grid(rng.normal(size=(8, *model.latent_shape)))
    want = decoder.reference(z)
    used = []
    for batch in (4, 4, 1, 2, 3, 4, 8):  # after the first two: 8 items run
        assert decoder(z[:batch]).tobytes() == want[:batch].tobytes()
        used.append(sorted(shapes[0][0] for shapes in decoder._fused_shapes))
    assert decoder._fused is not None and decoder._fused is not False
    assert used == [[], [], [], [2], [2, 3], [2, 3], [2, 3]]


def test_a_network_of_large_items_turns_to_xla_after_enough_values():
    """Items of `XLA_LARGE_ITEM` values or more (a photo's latents) count
    by their values: after `XLA_AFTER_VALUES`, even one item a call uses
    XLA, one compilation per input shape, for at most `XLA_MAX_SHAPES`."""
    kernel = tf.constant(np.random.default_rng(8).normal(size=(3, 3, 4, 4)) * 0.2)

    def convolve(x):
        return tf.nn.relu(tf.nn.conv2d(x, tf.cast(kernel, x.dtype), 1, "SAME"))

    network = FixedPointNetwork(convolve, [tf.TensorSpec([None, None, None, 4])])
    network.XLA_LARGE_ITEM, network.XLA_AFTER_VALUES = 8 * 8 * 4, 3 * 8 * 8 * 4
    network.XLA_MAX_SHAPES = 2
    rng = np.random.default_rng(9)
    used = []
    for side in (8, 8, 8, 4, 8, 9, 10, 8):  # 4x4: a small item, never fused
        x = to_grid(rng.normal(size=(1, side, side, 4)))
        assert _same_bits(network(x), network.reference(x))
        used.append(sorted(shape[0][1] for shape in network._fused_shapes))
    assert used == [[], [], [], [], [8], [8, 9], [8, 9], [8, 9]]


def test_a_batch_larger_than_a_chunk_gives_the_same_bits(networks):
    """A batch runs in chunks of `chunk` items (the last one shorter): the
    bits of the whole batch at once."""
    _, posterior, decoder = networks
    x = images(10, seed=7)
    z_mean, _ = posterior(x)
    for network, inputs in ((posterior, x), (decoder, z_mean)):
        assert network.chunk is None
        chunked = copy.copy(network)
        chunked.chunk = 4
        assert _same_bits(chunked(inputs), network(inputs))
        assert _same_bits(chunked(inputs), network.reference(inputs))


def _recording_runs(network):
    """`network`, recording the batch size of each graph run in a list."""
    sizes, run = [], network._run
    network._run = lambda arrays, batch, items=None: (
        sizes.append(batch) or run(arrays, batch, items)
    )
    return sizes


def _fresh(network, **settings):
    """A copy of `network` that has run nothing, with class settings."""
    fresh = copy.copy(network)
    fresh._fused, fresh._fused_shapes, fresh._items, fresh._values = None, set(), 0, 0
    for name, value in settings.items():
        setattr(fresh, name, value)
    return fresh


def test_short_chunks_are_padded_to_run_the_one_compiled_graph(networks):
    """In a job announced as long, a shorter batch or last chunk is padded to
    a whole chunk: every run one compiled shape, the interpreter's bits
    (one output or several), and only the real items count as work done.
    After the job, a short chunk is padded only if it fills half a chunk."""
    _, posterior, decoder = networks
    rng = np.random.default_rng(11)
    z = to_grid(rng.normal(size=(11, *decoder._signature[0].shape[1:])))
    for network, inputs in ((decoder, z), (posterior, images(11, seed=13))):
        chunked = _fresh(network, chunk=4, XLA_MIN_BATCH=4, XLA_AFTER=20)
        sizes = _recording_runs(chunked)
        with chunked.expecting(25):
            for batch in (1, 3, 4, 6, 11):
                want = network.reference(inputs[:batch])
                assert _same_bits(chunked(inputs[:batch]), want)
        assert sizes == [4] * 8  # 1, 3, 4, 4 + 2, 4 + 4 + 3: all whole chunks
        assert chunked._fused_shapes == {((4, *inputs.shape[1:]),)}
        assert callable(chunked._fused)
        assert chunked._items == 1 + 3 + 4 + 6 + 11 and chunked._announced == 0
        sizes.clear()
        for batch in (1, 2):  # 25 items run: a long job, but not announced
            want = network.reference(inputs[:batch])
            assert _same_bits(chunked(inputs[:batch]), want)
        assert sizes == [1, 4]

    # Past the long-job threshold but unannounced, items coded one a call
    # (the lossy codec's) are not padded; a half chunk is, once whole chunks
    # have run through XLA.
    unannounced = _fresh(decoder, chunk=4, XLA_MIN_BATCH=4, XLA_AFTER=2)
    sizes = _recording_runs(unannounced)
    for batch in (1, 1, 1, 2, 4, 2, 1):
        assert _same_bits(unannounced(z[:batch]), decoder.reference(z[:batch]))
    assert sizes == [1, 1, 1, 2, 4, 4, 1]


def test_a_job_announced_as_long_runs_through_xla_from_its_first_chunk(networks):
    """`expecting`: in a job announced as `XLA_AFTER` items or more the
    network runs its XLA graph at once, with the same bits; in a shorter one
    it waits as before; the announcement ends with the job, also on error."""
    _, posterior, _ = networks
    x = images(8, seed=12)
    for announced, fused in ((5, False), (10, True)):
        network = _fresh(posterior, XLA_AFTER=10, XLA_MIN_BATCH=8)
        with network.expecting(announced):
            assert _same_bits(network(x), posterior.reference(x))
        assert callable(network._fused) is fused
    network = _fresh(posterior, XLA_AFTER=10, XLA_MIN_BATCH=8)
    with pytest.raises(RuntimeError, match="job failed"):
        with network.expecting(10):
            raise RuntimeError("job failed")
    assert network._announced == 0
    network(x)
    assert network._fused is None  # 8 items run: not yet a long job


def test_a_network_run_in_chunks_needs_the_batch_axis_first():
    """An output whose leading axis is not the batch's cannot be put back
    together from chunks: a clear error, not a wrong array."""
    network = FixedPointNetwork(
        lambda x: tf.transpose(x * 0.5), [tf.TensorSpec([None, 3])], chunk=2
    )
    x = to_grid(np.arange(15.0).reshape(5, 3))
    np.testing.assert_array_equal(network(x[:2]), (x[:2] * 0.5).T)
    with pytest.raises(ValueError, match="leading axis"):
        network(x)
    with pytest.raises(ValueError, match="chunk must be a positive integer"):
        FixedPointNetwork(lambda x: x, [tf.TensorSpec([None, 3])], chunk=True)


def test_the_xla_graph_runs_every_rule_with_the_interpreters_bits():
    """`test_each_rule...`'s ops, their elementwise runs compiled by XLA."""
    network = with_xla(FixedPointNetwork(_every_rule, [tf.TensorSpec([None, 2])]))
    x = to_grid(np.linspace(-9, 9, 4002)).reshape(-1, 2)
    ties = np.arange(-40, 40).reshape(-1, 2) * fixed_point._STEP
    for inputs in (x, ties, 1000 * x):
        assert _same_bits(network(inputs), network.reference(inputs))
    assert callable(network._fused)


def _every_rule(x):
    c = tf.constant(0.3)
    y = x * c
    count = tf.cast(tf.shape(x)[0], tf.float32)
    a, b = tf.split(x * 1.5, 2, axis=1)  # runs reading one output of several
    return (
        *(x + c, c - x, x - y, x + y, x * y, y * count, x / c),
        *(c / (tf.abs(x) + 1.0), x / (tf.abs(y) + 5.0), tf.maximum(x, c)),
        *(tf.minimum(x, y), -x, tf.abs(x), tf.nn.relu(x), tf.nn.relu6(x)),
        *(tf.square(x), tf.sqrt(tf.abs(x)), tf.math.rsqrt(tf.abs(x) + 1.0)),
        *(tf.clip_by_value(x, -0.7, 0.4), tf.round(x * 3.0), tf.floor(y)),
        tf.cast(tf.cast(x * 4.0, tf.int32), tf.float32),
        tf.concat([x, tf.constant([[0.3, -0.7]])], axis=0),
        tf.tanh(x) * tf.exp(-tf.abs(y)) + tf.math.erf(x) - tf.sigmoid(y),
        a * 0.25 - b,
    )


def test_each_rule_of_the_graph_in_units_gives_the_interpreters_bits():
    """The graph holds values in units of the grid step: every kind of op,
    with weights on either side, against the numpy specification."""
    network = FixedPointNetwork(_every_rule, [tf.TensorSpec([None, 2], tf.float32)])
    assert network._graph is not None
    step = fixed_point._STEP
    x = to_grid(np.linspace(-9, 9, 4002)).reshape(-1, 2)
    ties = np.arange(-40, 40).reshape(-1, 2) * step  # halves of steps ahead
    for inputs in (x, ties, 1000 * x):
        assert _same_bits(network(inputs), network.reference(inputs))


def test_the_graph_rounds_ties_to_even_like_the_interpreter():
    def affine(x):
        return x * tf.constant(0.5) + tf.constant(0.25)

    network = FixedPointNetwork(affine, [tf.TensorSpec([None], tf.float32)])
    step = fixed_point._STEP
    x = np.arange(-8, 9) * step  # x / 2 is a tie for every odd x
    assert _same_bits(network(x), network.reference(x))
    np.testing.assert_array_equal(network(x), to_grid(to_grid(x / 2) + 0.25))
    assert network(np.array([step]))[0] == 0.25  # 0.5 step rounds to 0 (even)


def test_a_network_with_an_op_only_the_interpreter_runs_falls_back_to_it():
    def scaled_softplus(x):
        return tf.nn.softplus(x) * tf.constant(3.0)

    network = FixedPointNetwork(scaled_softplus, [tf.TensorSpec([None], tf.float32)])
    assert network._graph is None
    x = to_grid(np.linspace(-20, 20, 101))
    np.testing.assert_array_equal(network(x), to_grid(to_grid(exact.softplus(x)) * 3))


def test_outputs_are_on_the_grid_and_do_not_depend_on_the_batch(networks):
    _, posterior, decoder = networks
    x = images(12, seed=2)
    whole = posterior(x)
    for output in whole:
        assert np.array_equal(output, to_grid(output))
    parts = [posterior(x[:5]), posterior(x[5:6]), posterior(x[6:])]
    for i, output in enumerate(whole):
        joined = np.concatenate([part[i] for part in parts])
        assert output.tobytes() == joined.tobytes()
    z = whole[0]
    assert (
        decoder(z).tobytes()
        == np.concatenate([decoder(z[:7]), decoder(z[7:])]).tobytes()
    )


def test_weights_sit_on_a_power_of_two_grid_within_the_exactness_budget():
    rng = np.random.default_rng(3)
    kernel = rng.normal(size=(576, 64)) * np.logspace(-3, 1, 64)
    quantized = fixed_point.quantize_weights(kernel, terms=576)
    for column, original in zip(quantized.T, kernel.T):
        _, exponent = np.frexp(np.max(np.abs(original)))
        step = 2.0 ** (exponent - 24 + (576 - 1).bit_length())
        units = column / step
        assert np.array_equal(units, np.rint(units))
        # Every output sums at most 2**24 weight units times 2**28 activation
        # units: below 2**53, so float64 holds each partial sum exactly.
        assert np.sum(np.abs(units)) <= 2**24
        # ...and no coarser: the largest weight keeps 14 bits (K = 576 < 2**10).
        assert 2**13 <= np.max(np.abs(units)) < 2**14
        np.testing.assert_allclose(column, original, atol=step / 2)


@pytest.mark.parametrize("op", sorted(fixed_point._TABLE_DOMAINS))
def test_table_lookups_give_the_functions_values_on_the_whole_grid(op):
    """Inside the table's domain and far beyond it, up to the grid's limits."""
    function, _, _ = fixed_point._TABLE_DOMAINS[op]
    rng = np.random.default_rng(4)
    x = to_grid(
        np.concatenate(
            [rng.normal(0, 4, 50000), rng.uniform(-4096, 4096, 2000), [-4096, 4096]]
        )
    )
    with np.errstate(over="ignore"):
        want = to_grid(function(x))
    np.testing.assert_array_equal(fixed_point._ELEMENTWISE[op][0](x), want)


def test_the_exactness_bound_makes_the_sum_order_irrelevant():
    """The worst case, the largest activations times the largest weights:
    every product is a whole number of units below 2**53 in total, so float64
    sums them exactly, forwards, backwards or in any blocking."""
    terms = 1024
    weights = fixed_point.quantize_weights(np.full((terms, 1), 0.37), terms)[:, 0]
    _, exponent = np.frexp(0.37)
    unit = 2.0**-16 * 2.0 ** (exponent - 24 + (terms - 1).bit_length())
    products = fixed_point.ACTIVATION_LIMIT * weights
    units = products / unit
    assert np.array_equal(units, np.rint(units))
    exact_sum = sum(int(u) for u in units)  # Python integers: exact
    assert exact_sum < 2**53
    forwards = 0.0
    for p in products:
        forwards += p
    backwards = 0.0
    for p in products[::-1]:
        backwards += p
    blocked = float(np.sum(products.reshape(32, 32).sum(axis=1)))
    assert forwards == backwards == blocked == exact_sum * unit


@pytest.mark.parametrize("products", fixed_point.PRODUCTS)
def test_functions_of_weights_alone_are_folded_exactly_off_the_grid(products):
    """exp of a weight is computed once, from the weight itself (not looked up
    at a grid point), then multiplies grid values like any weight."""
    weight = tf.constant([[0.123456789, -2.5], [1.75, 0.3]], tf.float32)

    def scaled(x):
        return tf.linalg.matmul(x, tf.exp(weight))

    network = FixedPointNetwork(
        scaled, [tf.TensorSpec([None, 2], tf.float32)], products=products
    )
    x = to_grid(np.array([[1.0, 2.0], [-0.5, 3.25]]) + 2.0**-16)
    folded = exact.exp(np.asarray(weight, np.float64))
    if products == "grid":
        kernel = fixed_point.quantize_weights(folded, terms=2)
    else:
        integers, exponents = fixed_point.integer_weights(folded)
        kernel = np.ldexp(integers, -exponents)
        rounded = fixed_point._block_round(x)  # 16 bits per row: 2**-13 steps
        assert not np.array_equal(rounded, x)
        np.testing.assert_array_equal(rounded, np.rint(x * 2**13) / 2**13)
        x = rounded
    np.testing.assert_array_equal(network(x), to_grid(x @ kernel))


def test_integer_weights_are_the_finest_within_the_l1_budget():
    """Each output channel's weights as integers times a power of two whose
    absolute values sum to at most 2**17, the step halved as long as that
    holds (from where the largest weight is below 2**17)."""
    rng = np.random.default_rng(3)
    kernel = rng.normal(size=(5, 5, 96, 64)) * np.logspace(-3, 1, 64)
    kernel[..., 0] = 0.0  # an unused output channel
    kernel[..., 1] = 0.0
    kernel[0, 0, 0, 1] = 0.37  # one weight alone
    integers, exponents = fixed_point.integer_weights(kernel)
    assert np.array_equal(integers, np.rint(integers))
    l1 = np.abs(integers).reshape(-1, 64).sum(axis=0)
    assert np.all(l1 <= 2**17) and l1[0] == 0
    assert l1[1] == np.rint(0.37 * 2.0 ** exponents[1]) > 2**16  # one weight
    # One step finer would break the budget: the first step that fits.
    finer = np.abs(np.rint(np.ldexp(kernel, exponents + 1))).reshape(-1, 64)
    assert np.all(finer.sum(axis=0)[2:] > 2**17)
    step = np.ldexp(1.0, -exponents)
    assert np.all(np.abs(integers * step - kernel) <= step / 2)


def test_the_digit_bound_makes_float32_sums_exact_in_any_order():
    """The "int16" products' worst case: the 16-bit integers at their
    largest, split into digits by the graph's own function, against integer
    weights of the largest L1 norm: each digit's sum is at most 2**24, so
    float32 holds every partial sum exactly, forwards, backwards or in any
    blocking, and the two digits' sums give the exact product."""
    largest_q = 2 ** (fixed_point.PRODUCT_BITS - 1) - 1  # its high digit: 2**7
    budget = 2**fixed_point.WEIGHT_L1_BITS
    rng = np.random.default_rng(5)
    weights = np.rint(rng.normal(size=1024) * 100.0)
    weights[0] += np.sign(weights[0]) * (budget - np.abs(weights).sum())
    assert np.abs(weights).sum() == budget
    q = np.where(weights >= 0, largest_q, -largest_q).astype(np.float64)
    q[::3] = rng.integers(-largest_q, largest_q + 1, size=len(q[::3]))
    # `_split_digits` takes values in units and picks the item's scale: q
    # times 2**3 (largest just under 2**18 units) comes back as q, scale 2**3.
    digits, scale = fixed_point._split_digits(tf.constant(q[None] * 8.0), tf.float32)
    assert np.asarray(scale).item() == 8.0
    high, low = np.asarray(digits, np.float64)
    assert np.abs(high).max() == 2**7 and np.abs(low).max() <= 2**7
    np.testing.assert_array_equal(high * fixed_point._DIGIT + low, q)
    sums = []
    for digit in (high, low):
        products = (digit * weights).astype(np.float32)
        exact_sum = int(np.sum(digit.astype(np.int64) * weights.astype(np.int64)))
        assert abs(exact_sum) <= 2**24
        forwards = np.float32(0.0)
        for p in products:
            forwards = np.float32(forwards + p)
        backwards = np.float32(0.0)
        for p in products[::-1]:
            backwards = np.float32(backwards + p)
        blocked = products.reshape(32, 32).sum(axis=1, dtype=np.float32).sum()
        assert forwards == backwards == blocked == exact_sum
        sums.append(exact_sum)
    exact_product = int(q.astype(np.int64) @ weights.astype(np.int64))
    assert 256 * sums[0] + sums[1] == exact_product


def test_the_graph_and_the_specification_take_the_same_16_bits():
    """The graph's block exponents (from float64 exponent bits) against the
    numpy specification's (`frexp`), at the powers of two where the
    exponent changes, with NaN (ignored by the largest value), for a
    vector input (one item) and for no items."""
    edges = [0.0, 1.0, 2**14, 2**15 - 1, 2**15, 2**15 + 1, 2**16 - 1, 2**16]
    edges += [2**16 + 1, 3 * 2**20 + 5, 2**28]
    units = np.array(edges + [-e for e in edges])
    items = [units[:, None] * np.ones((1, 3)), units[:, None] * [[1.0, 0.5, -0.25]]]
    with_nan = np.array([[np.nan, 5.0 * 2**16, 3.0]])
    cases = [*items, with_nan, units, np.zeros((0, 4))]
    for case in cases:
        q, scale = fixed_point._block_integers(tf.constant(case))
        graph = np.asarray(q) * np.asarray(scale) * fixed_point._STEP
        want = fixed_point._block_round(case * fixed_point._STEP)
        np.testing.assert_array_equal(graph, want)
        assert np.nanmax(np.abs(np.asarray(q)), initial=0.0) <= 2**15
    # NaN does not set its item's exponent: 5.0 keeps its value.
    assert fixed_point._block_round(with_nan * fixed_point._STEP)[0, 1] == 5.0


def test_the_probe_finds_float32_products_in_lower_precision(monkeypatch):
    """oneDNN asked for bf16 math, or a kernel rounding its float32 inputs
    to bfloat16 (as a reduced-precision mode does): not exact."""
    probe = fixed_point._float32_sums_are_exact.__wrapped__  # uncached
    assert probe()
    monkeypatch.setenv("ONEDNN_DEFAULT_FPMATH_MODE", "BF16")
    assert not probe()
    monkeypatch.setenv("ONEDNN_DEFAULT_FPMATH_MODE", "STRICT")
    assert probe()
    convolve = tf.nn.conv2d

    def in_bfloat16(x, kernel, *args, **kwargs):
        if x.dtype == tf.float32:
            x, kernel = (
                tf.cast(tf.cast(t, tf.bfloat16), tf.float32) for t in (x, kernel)
            )
        return convolve(x, kernel, *args, **kwargs)

    monkeypatch.setattr(tf.nn, "conv2d", in_bfloat16)
    assert not probe()


def test_products_take_each_items_activations_to_16_bits():
    """Block floating point per item: the smallest power-of-two step (from
    one grid step up) that keeps every value of the item within 2**15 steps;
    an item within 2**15 grid steps is unchanged, and no item's rounding
    depends on another's."""
    step = fixed_point._STEP
    small = to_grid(np.linspace(-0.4, 0.5, 12))  # within 2**15 steps (0.5)
    large = to_grid(np.linspace(-3.0, 9.7, 12))  # 9.7 < 2**4: steps of 2**5
    x = np.stack([small, large, 300.0 * small])
    rounded = fixed_point._block_round(x)
    assert np.array_equal(rounded[0], small)
    assert np.array_equal(rounded[1], np.rint(large / (32 * step)) * 32 * step)
    assert np.abs(rounded[1] / (32 * step)).max() <= 2**15
    assert np.abs(rounded[1] - large).max() <= 16 * step
    for i in range(3):
        assert np.array_equal(fixed_point._block_round(x[i : i + 1])[0], rounded[i])


def test_without_exact_float32_sums_the_products_run_in_float64(monkeypatch):
    """Where the probe finds float32 products summed in lower precision, the
    digits are multiplied in float64: the same sums, so the same bits."""
    assert fixed_point._float32_sums_are_exact()  # this machine's kernels
    model = presets.get("mnist-8bit").build_model(0)
    model.build((None, 28, 28, 1))
    spec = [tf.TensorSpec([None, *model.latent_shape], tf.float32)]
    z = to_grid(np.random.default_rng(6).normal(size=(5, *model.latent_shape)))
    network = FixedPointNetwork(model.decoder, spec)
    want = network.reference(z)

    def product_types(network):  # of the XLA graph, which splits digits
        graph = network._compile(xla=True).get_concrete_function().graph
        ops = graph.get_operations()
        return {op.inputs[-1].dtype for op in ops if op.type in fixed_point._PRODUCTS}

    assert tf.float32 in product_types(network)
    assert _same_bits(with_xla(network)(z), want)
    monkeypatch.setattr(fixed_point, "_float32_sums_are_exact", lambda: False)
    fallback = FixedPointNetwork(model.decoder, spec)
    assert product_types(fallback) == {tf.float64}
    assert _same_bits(fallback(z), want)
    assert _same_bits(with_xla(fallback)(z), want)


def test_an_operation_it_cannot_run_is_named():
    def uses_cumsum(x):
        return tf.math.cumsum(x, axis=1)

    with pytest.raises(NotSupportedError, match="Cumsum"):
        FixedPointNetwork(uses_cumsum, [tf.TensorSpec([None, 4], tf.float32)])

    def float_product(x):  # its rounding would depend on the order
        return tf.reduce_prod(x, axis=1)

    with pytest.raises(NotSupportedError, match="Prod .* of float values"):
        FixedPointNetwork(float_product, [tf.TensorSpec([None, 4], tf.float32)])


def test_the_graphs_run_without_graph_rewriting_and_the_options_come_back():
    """Inside `_graph_as_written`, functions run with Grappler off (their
    ops as the rules write them); outside, TensorFlow's options are as they
    were."""
    from tensorflow.core.protobuf import config_pb2
    from tensorflow.python.eager import context

    def meta_optimizer_disabled():
        config = config_pb2.ConfigProto()
        config.ParseFromString(
            context.context().function_call_options.config_proto_serialized
        )
        return config.graph_options.rewrite_options.disable_meta_optimizer

    before = context.context().function_call_options
    assert not meta_optimizer_disabled()
    with fixed_point._graph_as_written():
        assert meta_optimizer_disabled()
    assert context.context().function_call_options is before
    with pytest.raises(RuntimeError), fixed_point._graph_as_written():
        raise RuntimeError
    assert context.context().function_call_options is before


def test_every_graph_call_runs_without_graph_rewriting(networks, monkeypatch):
    entered = []
    written = fixed_point._graph_as_written

    def spy():
        entered.append(True)
        return written()

    monkeypatch.setattr(fixed_point, "_graph_as_written", spy)
    _, posterior, _ = networks
    posterior(images(2))
    assert entered
