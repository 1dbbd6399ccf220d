"""Networks run in fixed point, exactly: the same outputs on every machine.

A learned codec computes its coding probabilities with neural networks, and
floating-point networks do not give the same bits everywhere: a matrix
product summed in another order (another thread count, vector width,
oneDNN or XLA, batch size) differs in its last bits, and a decoder that
computes one probability differently from the encoder loses the stream.
The known remedy is integer arithmetic (Balle, Johnston and Minnen,
"Integer networks for data compression with latent-variable models", ICLR
2019): sums of integer products are exact, so their order does not matter.

`FixedPointNetwork` runs a network that way. It traces the network's
TensorFlow graph once, then evaluates it op by op with these rules:

- Every float tensor lives on the grid of multiples of `2**-16`
  (`ACTIVATION_BITS`), clipped to `[-4096, 4096]`: after each op its
  result is rounded to the grid (round half to even).
- Matrix products and convolutions sum integers exactly, by one of two
  rules (`products`, which a codec's file records through its
  arithmetic):

  - `"int16"` (the default): each item's activations entering a product
    are rounded to 16 significant bits, block floating point: integers
    `|q| <= 2**15` times one power of two per item (`_block_round`), the
    smallest from one grid step up. Each output channel's weights are
    integers times a power of two, the finest whose integers sum to at
    most `2**17` in absolute value (`integer_weights`). So every output
    is an integer sum of at most `2**32`. It can be computed as two float32
    products, of the high and low 8-bit digits of `q` (`|digit| <=
    2**7`), each summing at most `2**7 * 2**17 = 2**24`: float32 holds
    every partial sum exactly, in any order, blocking or with fused
    multiply-adds, and the digits' sums recombine exactly in float64.
    The same sums come from one float64 product of `q` (exact: far below
    `2**53`), which the graph uses where the digits do not pay: without XLA
    (their split and recombination are extra passes over memory) and for
    products of fewer than 64 terms per output. float32 kernels run about
    4 times faster than float64 ones on CPUs, which is the point.
  - `"grid"` (the first fixed-point arithmetic, for its files): the
    activations enter as they are, on the grid (up to `2**28` grid steps);
    the weights are multiples of `2**-e` per output channel with `K *
    max|w| * 2**e <= 2**24` for `K` terms per output, so each output sums
    at most `2**52` units: exact in float64's kernels.

  Exact float32 sums need float32 kernels that compute in float32: a
  library set to multiply float32 in lower precision (oneDNN's bf16 or
  TF32 "fpmath" modes, TensorFloat-32 on GPUs) would break them. Before
  the first digit product of a process, a check
  (`_float32_sums_are_exact`: oneDNN's settings, and a probe of the kernels
  the digits use) compares such sums with exact ones and, if they differ,
  has every product run in float64 instead: the same sums, slower.
- What depends on the weights alone (e.g. a GDN's `gamma = gamma_root**2`)
  is computed once, in float64 with the same operations and without the
  grid, and is then a weight like any other.
- Elementwise ops use only correctly rounded operations (`+ - * /`,
  `sqrt`) and `vae_tf.exact`'s elementary functions, which are
  the same function on every machine.

The network runs as one TensorFlow graph of ops that apply these rules
(float64 but for the float32 digit products), on values held in units of
the grid step (`x * 2**16`: an exact scaling, which commutes with every
correctly rounded operation, so rounding to the grid is one `round` and a
clip). The products run in
TensorFlow's kernels, kept out of XLA. Once a network has run enough work
in a process, or in a job its caller announces as long
(`FixedPointNetwork.XLA_AFTER`, `FixedPointNetwork.expecting`), each run of
elementwise ops between two products (with the `"int16"` digits' split
before a product and their recombination after it) is compiled by XLA into
one pass over memory
(TensorFlow makes one pass per op), which changes no bit: those ops are
correctly rounded (`+ - * /`, `sqrt`, `round`, `min`, `max`) or exact
(table look-ups, casts of integers), XLA's CPU compiler does not reorder
floating-point arithmetic, and the one liberty it takes, fusing a product
and a sum into a multiply-add, cannot arise, since every product in these
rules is exact or rounded to the grid before anything is added to it. The
tests check both graphs against the numpy specification.
`FixedPointNetwork.reference` runs the same rules op by op in numpy, as
the specification the graph is tested against (and for the few ops whose
exact function is numpy code: `Log`, `Log1p`, `Softplus`).

Why not LiteRT's integer kernels, which are faster: their requantisation
(an int32 sum scaled back to int8) is rounded differently by different
kernel libraries and instruction sets (XNNPACK's x86 and ARM kernels,
TFLite's single and double rounding builds), so an int8 network is not the
same function everywhere; exact sums are.

The guarantee: for the same network weights and the same inputs on the
grid, every machine, process, thread count, batch size and grouping gives
bit-identical outputs (an item's block exponent is its own, so grouping
items into batches changes nothing). The cost is the rounding: activations
to about 1.5e-5 after every op, and the products' operands (`"int16"`: 16
significant bits per item, weights of about 2**17 / K units each; `"grid"`:
13 or more significant bits per weight), measured in the codecs'
benchmarks as a change in code length and PSNR.

Raises `NotSupportedError` (at construction) for a network using an op this
interpreter does not run, naming it.
"""

import collections
import concurrent.futures
import contextlib
import functools
import math
import os
import threading

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import config_pb2
from tensorflow.python.eager import context
from tensorflow.python.framework.convert_to_constants import (
    convert_variables_to_constants_v2,
)

from vae_tf import exact
from vae_tf.models.base import NotSupportedError

__all__ = [
    "ACTIVATION_BITS",
    "PRODUCTS",
    "FixedPointNetwork",
    "integer_weights",
    "quantize_weights",
    "to_grid",
]

ACTIVATION_BITS = 16
ACTIVATION_LIMIT = 4096.0
_WEIGHT_BUDGET_BITS = 24  # K * max|w_int| <= 2**24; activations < 2**28 units
_STEP = 2.0**-ACTIVATION_BITS
_SCALE = 2.0**ACTIVATION_BITS
# The "int16" products: activations rounded to 16-bit integers per item
# (|q| <= 2**15), as two digits |d| <= 2**7; integer weights with at most
# 2**17 of L1 norm per output channel; so a digit's sum is at most 2**24.
PRODUCT_BITS = 16
WEIGHT_L1_BITS = 17
_DIGIT = 2.0**8
_DIGITS_MIN_TERMS = 64  # fewer terms per output: one float64 product
PRODUCTS = ("int16", "grid")


def to_grid(x) -> np.ndarray:
    """`x` rounded to the activation grid (multiples of `2**-16`, half to
    even) and clipped to `[-4096, 4096]`, float64; zero is `+0.0`."""
    out = np.array(x, dtype=np.float64)  # a copy, rounded in place
    with np.errstate(over="ignore", invalid="ignore"):
        np.multiply(out, _SCALE, out=out)
    np.rint(out, out=out)
    np.multiply(out, _STEP, out=out)
    np.clip(out, -ACTIVATION_LIMIT, ACTIVATION_LIMIT, out=out)
    out += 0.0  # -0.0 becomes 0.0: a zero's sign is not left to the kernels
    return out


# Elementary functions of a grid value, as tables over the grid points of
# the domain outside which the function, rounded to the grid, is constant
# (checked when the table is built): a lookup instead of dozens of numpy
# passes per call, and the same values, since the table holds exactly what
# the function gives on the grid (the integer networks' look-up tables).
_TABLE_DOMAINS = {
    "Exp": (exact.exp, -12.0, 8.5),
    "Tanh": (exact.tanh, -8.0, 8.0),
    "Erf": (exact.erf, -5.0, 5.0),
    "Erfc": (exact.erfc, -6.0, 6.0),
    "Sigmoid": (exact.sigmoid, -12.0, 12.0),
}


@functools.cache
def _table(op: str) -> np.ndarray:
    function, low, high = _TABLE_DOMAINS[op]
    points = np.arange(round(low * _SCALE), round(high * _SCALE) + 1) * _STEP
    table = to_grid(function(points))
    # Beyond the domain the function, on the grid, is its value at the ends.
    for end, beyond in ((low, -np.inf), (high, np.inf)):
        if to_grid(function(end))[()] != to_grid(function(beyond))[()]:
            raise AssertionError(f"{op} is not constant beyond {end} on the grid.")
    table.flags.writeable = False
    return table


def _look_up(op):
    """`op`'s function of grid values, by table."""
    _, low, _ = _TABLE_DOMAINS[op]
    offset = round(low * _SCALE)

    def function(x):
        table = _table(op)
        index = np.multiply(x, _SCALE)
        np.clip(index, offset, offset + len(table) - 1, out=index)
        index -= offset
        return table[index.astype(np.int64)]

    return function


def quantize_weights(kernel: np.ndarray, terms: int) -> np.ndarray:
    """`kernel` (output channels last) on a power-of-two grid per output
    channel, fine enough to keep `terms * max|w_int| <= 2**24`.

    Only exact operations: `max`, `frexp`, `ldexp` and `rint`; so every
    machine quantizes the same float32 weights to the same grid.
    """
    kernel = np.asarray(kernel, dtype=np.float64)
    flat = kernel.reshape(-1, kernel.shape[-1])
    largest = np.max(np.abs(flat), axis=0)
    _, exponent = np.frexp(largest)  # largest < 2**exponent
    e = _WEIGHT_BUDGET_BITS - (int(terms) - 1).bit_length() - exponent
    e = np.where(largest > 0, e, 0).astype(np.int64)
    return np.ldexp(np.rint(np.ldexp(kernel, e)), -e)


def integer_weights(kernel: np.ndarray) -> tuple:
    """`kernel` (output channels last) as integers and a power-of-two step
    per output channel, `kernel ~= integers * 2**-exponents`, with the
    finest step at which each output channel's integers sum to at most
    `2**17` in absolute value (`WEIGHT_L1_BITS`): the `"int16"` products'
    weights.

    The exponent is the largest one, stepping down from the one at which
    the channel's largest weight is below `2**17`, whose rounded integers
    (`rint`, half to even) meet the bound, checked in exact integer sums;
    so every machine quantizes the same float32 weights to the same
    integers.

    Returns:
        `(integers, exponents)`: float64 integers of `kernel`'s shape, and
        int64 exponents of shape `(kernel.shape[-1],)`.
    """
    kernel = np.asarray(kernel, dtype=np.float64)
    flat = kernel.reshape(-1, kernel.shape[-1])
    largest = np.max(np.abs(flat), axis=0)
    _, exponent = np.frexp(largest)  # largest < 2**exponent
    e = np.where(largest > 0, WEIGHT_L1_BITS - exponent, 0).astype(np.int64)
    while True:
        integers = np.rint(np.ldexp(flat, e))
        over = np.abs(integers).astype(np.int64).sum(axis=0) > 2**WEIGHT_L1_BITS
        if not over.any():
            return integers.reshape(kernel.shape), e
        e = e - over


def _same(kernel):
    return kernel


def _swap_last_two(kernel):
    return np.swapaxes(kernel, -1, -2)


def _attr(node, name, default=None):
    if name not in node.attr:
        return default
    value = node.attr[name]
    kind = value.WhichOneof("value")
    if kind == "list":
        return list(value.list.i) or [s.decode() for s in value.list.s]
    if kind == "s":
        return value.s.decode()
    if kind == "type":
        return tf.dtypes.as_dtype(value.type)
    return getattr(value, kind) if kind else default


def _padding(node):
    padding = _attr(node, "padding")
    if padding == "EXPLICIT":
        pairs = _attr(node, "explicit_paddings")
        return [pairs[i : i + 2] for i in range(0, len(pairs), 2)]
    return padding


# Elementwise ops: (numpy function, TensorFlow function); a float result is
# rounded to the grid. Tables are looked up by the graph itself; the exact
# functions that are numpy code run in the interpreter only (None).
_ELEMENTWISE = {
    "AddV2": (np.add, tf.add),
    "Add": (np.add, tf.add),
    "BiasAdd": (np.add, tf.add),
    "Sub": (np.subtract, tf.subtract),
    "Mul": (np.multiply, tf.multiply),
    "RealDiv": (np.divide, tf.math.truediv),
    "FloorDiv": (np.floor_divide, tf.math.floordiv),
    "Maximum": (np.maximum, tf.maximum),
    "Minimum": (np.minimum, tf.minimum),
    "Neg": (np.negative, tf.negative),
    "Abs": (np.abs, tf.abs),
    "Square": (lambda x: x * x, lambda x: x * x),
    "Sqrt": (np.sqrt, tf.sqrt),
    "Rsqrt": (lambda x: 1.0 / np.sqrt(x), lambda x: 1.0 / tf.sqrt(x)),
    "Relu": (lambda x: np.maximum(x, 0.0), lambda x: tf.maximum(x, 0.0)),
    "Relu6": (lambda x: np.clip(x, 0.0, 6.0), lambda x: tf.clip_by_value(x, 0.0, 6.0)),
    "ClipByValue": (np.clip, tf.clip_by_value),
    "Round": (np.rint, tf.round),
    "Floor": (np.floor, tf.floor),
    "Exp": (_look_up("Exp"), None),
    "Tanh": (_look_up("Tanh"), None),
    "Erf": (_look_up("Erf"), None),
    "Erfc": (_look_up("Erfc"), None),
    "Sigmoid": (_look_up("Sigmoid"), None),
    "Log": (exact.log, None),
    "Log1p": (exact.log1p, None),
    "Softplus": (exact.softplus, None),
}


def _cast_type(node):
    """A cast's target type; every float tensor is float64 here."""
    dtype = _attr(node, "DstT")
    return tf.float64 if dtype.is_floating else dtype


# Nodes that hold the graph together rather than compute.
_GRAPH_OPS = ("Placeholder", "Const", "NoOp")
# The sums of products: one operand must be a weight (a constant).
_PRODUCTS = ("MatMul", "Conv2D", "Conv2DBackpropInput", "Einsum")
# Einsum equations run: a product of the last axis with a weight's first.
_EINSUMS = {"...a,ab->...b", "...i,ij->...j"}


class FixedPointNetwork:
    """A TensorFlow function of float32 tensors, run in exact fixed point.

    Args:
        function: a function of tensors (e.g. a Keras network's `__call__`),
            returning a tensor or a tuple of tensors.
        input_signature: one `tf.TensorSpec` per argument.
        chunk: run a batch through the graph in chunks of at most this many
            items (the codecs use `CHUNK`), which keeps the float64
            activations of a batch of small items (tiles) small; only for a
            network whose outputs for an item do not depend on the other
            items of its batch (per-example layers, as a VAE's encoder and
            decoder), where it changes no bit. `None`: the whole batch at
            once.
        products: how matrix products and convolutions sum, `"int16"`
            (16-bit activations per item, weights of bounded L1 norm: exact
            integer sums, as float32 digit products where XLA runs) or
            `"grid"` (activations on the grid, exact float64 sums); see the
            module docstring. The block exponents of
            `"int16"` are per item along the leading axis of each product's
            input, so a network's outputs do not depend on how items are
            grouped into batches as long as that axis is the batch's.

    Call arguments:
        *inputs: arrays matching `input_signature`; each is first rounded to
            the activation grid.

    Returns:
        The outputs as float64 numpy arrays on the grid (a tuple if
        `function` returns several).

    Raises:
        NotSupportedError: the network uses an op this interpreter does not
            run (named in the message).
        ValueError: `chunk` is not a positive integer or `None`, or
            `products` is not one of `PRODUCTS`; (at a call) with `chunk`,
            an input or output without the batch's leading axis.
    """

    def __init__(
        self,
        function,
        input_signature,
        chunk: int | None = None,
        products: str = "int16",
    ):
        if products not in PRODUCTS:
            raise ValueError(
                f"products must be one of {PRODUCTS}. Received: {products=}"
            )
        self.products = products
        if chunk is not None and (
            isinstance(chunk, bool)
            or not isinstance(chunk, (int, np.integer))
            or chunk < 1
        ):
            raise ValueError(
                f"chunk must be a positive integer or None. Received: {chunk=}"
            )
        self.chunk = None if chunk is None else int(chunk)
        concrete = tf.function(function, autograph=False).get_concrete_function(
            *input_signature
        )
        self._signature = list(input_signature)
        frozen = convert_variables_to_constants_v2(concrete)
        graph = frozen.graph.as_graph_def()
        self._nodes = {node.name: node for node in graph.node}
        self._inputs = [t.op.name for t in frozen.inputs]
        self._outputs = [t.name for t in frozen.outputs]
        self._single = not isinstance(concrete.structured_outputs, (tuple, list))
        known = {*_ELEMENTWISE, *_STRUCTURAL, *_PRODUCTS, *_GRAPH_OPS}
        unknown = sorted({node.op for node in graph.node if node.op not in known})
        if unknown:
            raise NotSupportedError(
                "This network uses operations the fixed-point interpreter does not "
                f"run: {', '.join(unknown)}."
            )
        for node in graph.node:
            if node.op == "Prod" and _attr(node, "T").is_floating:
                # A float product's rounding would depend on its order.
                raise NotSupportedError(f"Prod {node.name!r} of float values.")
        self._constants = {}
        for node in graph.node:
            if node.op == "Const":
                value = tf.make_ndarray(node.attr["value"].tensor)
                if _attr(node, "dtype").is_floating:
                    # Every float tensor is float64 here, also the bfloat16 and
                    # float16 constants of a mixed-precision network (exact).
                    value = value.astype(np.float64)
                self._constants[node.name] = value
        self._fold_constants()
        self._quantize_weights()
        self._graph = self._compile()
        self._fused, self._fused_shapes = None, set()
        self._items, self._values = 0, 0  # run in this process
        self._announced = 0  # the running job's items (`expecting`)
        # Chunks run in threads: one at a time decides on XLA (and creates
        # its graph) and counts the work done.
        self._lock = threading.RLock()

    def _fold_constants(self):
        """Evaluate, once, every node computed from constants alone (float64,
        off the grid), so that it counts as a constant."""
        values = dict(self._constants)
        for name in self._order():
            node = self._nodes[name]
            inputs = [i for i in node.input if not i.startswith("^")]
            if name in values or node.op in ("Placeholder", "NoOp") or not inputs:
                continue
            if not all(i.split(":")[0] in values for i in inputs):
                continue
            args = [self._value(values, i) for i in inputs]
            values[name] = self._evaluate(node, args, on_grid=False)
            if not isinstance(values[name], list):
                self._constants[name] = values[name]
                node.op = "Const"  # from here on, a constant

    # Weights: the constant operand of every matrix product and convolution.

    def _source(self, name):
        """The node that produces input `name`, through Identity ops."""
        node = self._nodes[name.split(":")[0].lstrip("^")]
        while node.op == "Identity":
            node = self._nodes[node.input[0].split(":")[0]]
        return node

    def _quantize_weights(self):
        self._weights, self._integer_weights = {}, {}
        for node in self._nodes.values():
            if node.op not in _PRODUCTS:
                continue
            operand = node.input[1]
            source = self._source(operand)
            if source.op != "Const":
                raise NotSupportedError(
                    f"{node.op} {node.name!r} multiplies two computed tensors; the "
                    "fixed-point interpreter needs one operand to be a weight."
                )
            kernel = np.asarray(self._constants[source.name], np.float64)
            # The kernel with its output channels last, its terms per output,
            # and the way back to its layout.
            restore = _same
            if node.op == "Einsum":
                if _attr(node, "equation").replace(" ", "") not in _EINSUMS:
                    raise NotSupportedError(
                        f"Einsum {_attr(node, 'equation')!r}: the fixed-point "
                        f"interpreter runs {sorted(_EINSUMS)} (a product over the "
                        "last axis with a weight matrix)."
                    )
                terms = kernel.shape[0]
            elif node.op == "MatMul":
                if _attr(node, "transpose_b", False):
                    kernel = kernel.T
                terms = kernel.shape[0]
            elif node.op == "Conv2D":  # (kh, kw, in, out)
                terms = math.prod(kernel.shape[:3])
            else:  # Conv2DBackpropInput: (kh, kw, out, in); outputs are axis 2
                terms = math.prod(kernel.shape[:2]) * kernel.shape[3]
                kernel = np.swapaxes(kernel, 2, 3)
                restore = _swap_last_two
            if self.products == "int16":
                integers, exponents = integer_weights(kernel)
                quantized = np.ldexp(integers, -exponents)
                self._integer_weights[node.name] = (
                    restore(integers),
                    np.ldexp(1.0, -exponents),  # each output channel's step
                    terms,
                )
            else:
                quantized = quantize_weights(kernel, terms)
            self._weights[node.name] = restore(quantized)

    # The chunk a codec's networks run in (`chunk`). A large first batch
    # pages in hundreds of megabytes of fresh float64 activations: the colour
    # decoder (78 outputs a pixel) took 6.8 to 12.8 ms a tile on the first
    # 466 tiles of a 1-megapixel photo, 4.7 to 5 on later batches; in chunks
    # of 64, 2.6 ms (README: the single photo's timings). The last chunk of
    # a batch is shorter: padded to a whole one where that pays (`_pads`),
    # else run as it is (below `XLA_MIN_BATCH` items, without XLA).
    CHUNK = 64

    # The elementwise runs between the products can be compiled by XLA: the
    # same bits (module docstring), but XLA compiles once per input shape,
    # about half a second a network. So a network turns to it only for a
    # long job: after `XLA_AFTER` items in this process (or at once, in a job
    # its caller announces as at least that long: `expecting`), for chunks of at
    # least `XLA_MIN_BATCH` items; or, for large items (at least
    # `XLA_LARGE_ITEM` input values each, as a photo's latents), after
    # `XLA_AFTER_VALUES` input values; and for at most `XLA_MAX_SHAPES` input
    # shapes. A long job gains, a short one pays nothing. A chunked network of
    # small items pads a short batch or last chunk to a whole chunk
    # (repeating its last item) to run the same compiled graph, in an
    # announced long job, or else if it fills half a chunk and whole chunks
    # have run through XLA (`_pads`): the padding items are dropped, and no
    # other item's bits depend on them (a chunked network's items are
    # independent).
    XLA_AFTER = 1024
    XLA_MIN_BATCH = 64
    XLA_LARGE_ITEM = 2**15
    XLA_AFTER_VALUES = 2**20
    XLA_MAX_SHAPES = 4

    @contextlib.contextmanager
    def expecting(self, items: int):
        """Within: a job of `items` items is running (e.g. the tiles of a
        file being coded). If they reach `XLA_AFTER`, the network runs
        through XLA from its first chunk instead of after its first
        `XLA_AFTER` items in the process, and pads short chunks to whole
        ones. On leaving (also on an error) the announcement ends. Changes
        no bit."""
        with self._lock:
            previous, self._announced = self._announced, int(items)
        try:
            yield self
        finally:
            with self._lock:
                self._announced = previous

    def __call__(self, *inputs):
        if self._graph is None:
            return self.reference(*inputs)
        arrays = [np.asarray(x, np.float64) for x in inputs]
        batch = arrays[0].shape[0] if arrays[0].ndim else 1
        if self.chunk is None or arrays[0].ndim == 0:
            return self._run(arrays, batch)
        if any(a.ndim == 0 or a.shape[0] != batch for a in arrays):
            raise ValueError(
                "A network run in chunks takes inputs with the same leading "
                f"(batch) axis. Received shapes: {[a.shape for a in arrays]}"
            )
        if batch <= self.chunk:
            return self._run_padded(arrays, batch, whole_batch=True)
        outputs = None
        starts = range(0, batch, self.chunk)

        def run(start):
            stop = min(start + self.chunk, batch)
            return self._run_padded([a[start:stop] for a in arrays], stop - start)

        # `CHUNK_THREADS` at a time; each chunk's outputs are its own. A
        # graph's first call traces and compiles once: TensorFlow makes
        # concurrent first calls wait for it.
        if self.CHUNK_THREADS > 1:
            parts = list(_chunk_pool(self.CHUNK_THREADS).map(run, starts))
        else:
            parts = [run(start) for start in starts]
        for start, part in zip(starts, parts):
            stop = min(start + self.chunk, batch)
            part = (part,) if self._single else part
            if outputs is None:
                outputs = tuple(np.empty((batch, *o.shape[1:]), o.dtype) for o in part)
            for whole, piece in zip(outputs, part):
                whole[start:stop] = piece
        for whole in outputs:  # read-only, as an unchunked call's outputs are
            whole.flags.writeable = False
        return outputs[0] if self._single else outputs

    # A batch's chunks run `CHUNK_THREADS` at a time, from a thread pool
    # shared by every network: TensorFlow spreads one small graph's ops over
    # the cores only in part, and the chunks are independent (the same bits
    # in any order). Measured on `mnist-8bit`'s networks, decompressing
    # 6,000 digits: 1,246 and 1,310 images/s two at a time, 1,143 and 1,048
    # one at a time.
    CHUNK_THREADS = 2

    def _run_padded(self, arrays, batch: int, whole_batch: bool = False):
        """`_run` of one chunk (at most `chunk` items): a short one padded to
        a whole chunk where that pays (`_pads`), to run the whole chunks'
        XLA graph; outputs checked to have the chunk's leading axis, unless
        the chunk is the `whole_batch` and was not padded."""
        size = batch
        whole = tuple((self.chunk, *a.shape[1:]) for a in arrays)
        if (
            0 < batch < self.chunk
            and self._pads(whole, batch)
            and self._locked(self._fused_graph, whole, self.chunk)
        ):
            size = self.chunk
            arrays = [
                np.concatenate([a, np.repeat(a[-1:], size - batch, axis=0)])
                for a in arrays
            ]
        outputs = self._run(arrays, size, items=batch)
        if size == batch and whole_batch:
            return outputs
        part = (outputs,) if self._single else outputs
        if any(o.ndim == 0 or o.shape[0] != size for o in part):
            raise ValueError(
                "A network run in chunks must give outputs with the batch's "
                f"leading axis. Received shapes: {[o.shape for o in part]} for "
                f"{size} items."
            )
        if size == batch:
            return outputs
        part = tuple(o[:batch] for o in part)
        return part[0] if self._single else part

    def _run(self, arrays, batch: int, items: int | None = None):
        """One call of the graph on `arrays` (float64, `batch` items, of which
        `items` (default all) count as work done)."""
        with self._lock:
            graph = self._fused_graph([a.shape for a in arrays], batch) or self._graph
        with tf.device("/CPU:0"), _graph_as_written():
            args = [tf.constant(0.0, tf.float64), *map(tf.constant, arrays)]
            try:
                outputs = graph(*args)
            except (tf.errors.UnimplementedError, tf.errors.InvalidArgumentError):
                if graph is self._graph:
                    raise
                self._fused = False  # no XLA here: the plain graph's same bits
                outputs = self._graph(*args)
        items = batch if items is None else items
        with self._lock:
            self._items += items
            self._values += arrays[0].size // max(batch, 1) * items
        # np.asarray shares the tensors' memory (read-only); .numpy() copies.
        if self._single:
            return np.asarray(outputs)
        return tuple(np.asarray(o) for o in outputs)

    def _pads(self, whole, batch: int) -> bool:
        """Whether a short chunk of `batch` items is padded to `whole` (the
        inputs' shapes of a whole chunk): for small items only (below
        `XLA_LARGE_ITEM` values); in a job announced as long (`expecting`),
        always; else if it fills half a chunk and whole chunks of these
        items have run through XLA in a long job (the plain graph takes
        about twice as long an item). So a caller coding an image or a few
        a call (the lossy codec, a service) does not pay for padding."""
        if math.prod(whole[0][1:]) >= self.XLA_LARGE_ITEM:
            return False
        with self._lock:
            if self._announced >= self.XLA_AFTER:
                return self._long_job(self.chunk)
            return (
                2 * batch >= self.chunk
                and self._long_job(self.chunk)
                and tuple(map(tuple, whole)) in self._fused_shapes
            )

    def _locked(self, function, *args):
        with self._lock:
            return function(*args)

    def _long_job(self, batch: int) -> bool:
        """Whether a call of `batch` items is part of a long job (`XLA_AFTER`
        items run in this process, or announced for this job) and large
        enough to run through XLA."""
        long_job = max(self._items, self._announced) >= self.XLA_AFTER
        return long_job and batch >= self.XLA_MIN_BATCH

    def _fused_graph(self, shapes, batch: int):
        """The graph with XLA-compiled elementwise runs, if a call on inputs
        of `shapes` (`batch` items) should use it (see `XLA_AFTER`), else
        None."""
        if self._fused is False:
            return None
        large = (
            math.prod(shapes[0]) >= self.XLA_LARGE_ITEM * batch
            and self._values >= self.XLA_AFTER_VALUES
        )
        if not (self._long_job(batch) or large):
            return None
        shape = tuple(tuple(s) for s in shapes)
        if shape not in self._fused_shapes:
            if len(self._fused_shapes) >= self.XLA_MAX_SHAPES:
                return None
            self._fused_shapes.add(shape)
        if self._fused is None:
            self._fused = self._compile(xla=True)
        return self._fused

    def reference(self, *inputs):
        """The same outputs, computed op by op in numpy: the specification
        the compiled graph is tested against, and the path for networks
        using an op the graph does not run (`Log`, `Log1p`, `Softplus`,
        whose exact functions are numpy code)."""
        values = {}
        for name, x in zip(self._inputs, inputs):
            values[name] = to_grid(x)
        for name in self._order():
            node = self._nodes[name]
            if name in values:
                continue
            if node.op == "Const":
                values[name] = self._constants[name]
                continue
            if node.op == "NoOp":
                continue
            args = [self._value(values, i) for i in node.input if not i.startswith("^")]
            values[name] = self._evaluate(node, args)
        outputs = tuple(self._value(values, t) for t in self._outputs)
        outputs = tuple(np.asarray(o, np.float64) for o in outputs)
        return outputs[0] if self._single else outputs

    def _evaluate(self, node, args, on_grid=True):
        """One node's output from its inputs' values."""
        if node.op in _ELEMENTWISE:
            dtype = _attr(node, "T")
            if dtype is not None and not dtype.is_floating:
                return _ELEMENTWISE[node.op][0](*args)  # shapes, indices
            args = [np.asarray(a, np.float64) for a in args]
            function = _ELEMENTWISE[node.op][0]
            if not on_grid and node.op in _TABLE_DOMAINS:
                function = _TABLE_DOMAINS[node.op][0]  # tables take grid values
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                out = function(*args)
            return to_grid(out) if on_grid else out
        with tf.device("/CPU:0"):
            if node.op in _STRUCTURAL:  # TensorFlow's, run eagerly
                out = _STRUCTURAL[node.op](*args, node=node)
                if isinstance(out, list):  # Split
                    return [np.asarray(o) for o in out]
                return np.asarray(out)
            if not on_grid:
                raise NotSupportedError(
                    f"{node.op} {node.name!r} of constants alone: fold it into the "
                    "weights before export."
                )
            if self.products == "int16":
                node, args, data = _activations_first(node, args, np.transpose)
                args[data] = _block_round(args[data])
            return to_grid(self._product(node, args).numpy())

    def _value(self, values, tensor_name):
        name, _, index = tensor_name.partition(":")
        value = values[name]
        if isinstance(value, list):
            return value[int(index or 0)]
        return value

    def _order(self):
        if not hasattr(self, "_topological"):
            seen, order = set(), []

            def visit(name):
                if name in seen:
                    return
                seen.add(name)
                for i in self._nodes[name].input:
                    visit(i.split(":")[0].lstrip("^"))
                order.append(name)

            for output in self._outputs:
                visit(output.split(":")[0])
            self._topological = order
        return self._topological

    def _compile(self, xla=False):
        """The network as one TensorFlow graph of float64 ops that follow the
        rules above, or None if it uses an op the graph does not run.

        The products run in TensorFlow's kernels, kept out of XLA (a
        `jit_scope` keeps auto-clustering away). With `xla`, each run of
        elementwise ops between them is one XLA-compiled function: XLA fuses
        the run into one pass over memory where TensorFlow makes one pass
        per op. The bits are the same (module docstring); the tests check
        both graphs against `reference`.
        """
        nodes = [self._nodes[name] for name in self._order()]
        runnable = {op for op, (_, in_tf) in _ELEMENTWISE.items() if in_tf}
        runnable |= {*_STRUCTURAL, *_PRODUCTS, *_TABLE_DOMAINS, *_GRAPH_OPS}
        if any(node.op not in runnable for node in nodes):
            return None
        runs = self._elementwise_runs(nodes) if xla else [(False, nodes)]
        # With XLA, an "int16" product's recombination of its digit sums is
        # left to the fused run that reads it (`_IntegerSums`): one pass fewer.
        defer = xla and self.products == "int16"

        def graph(zero, *inputs):
            # Float tensors are held in units of the grid step (`x * 2**16`,
            # an exact scaling): rounding to the grid is then `round` and a
            # clip, with no scaling passes. Float constants are held as they
            # are and scaled where an op needs them in units.
            values, kinds = {}, {}
            tables = {  # one table constant per op, in units
                op: tf.constant(_table(op) * _SCALE)
                for op in sorted({node.op for node in nodes} & set(_TABLE_DOMAINS))
            }
            for name, x in zip(self._inputs, inputs):
                values[name], kinds[name] = _round_units(x * _SCALE, zero), "units"
            for fused, part in runs:
                if fused:
                    self._trace_fused(part, values, kinds, tables, zero)
                else:
                    self._trace_nodes(part, values, kinds, tables, zero, defer)
            for t in self._outputs:
                _settle(values, kinds, t.split(":")[0], zero)
            outputs = tuple(
                self._value(values, t) * _STEP
                if kinds[t.split(":")[0]] == "units"
                else self._value(values, t)
                for t in self._outputs
            )
            return outputs[0] if self._single else outputs

        signature = [tf.TensorSpec([], tf.float64)] + [
            tf.TensorSpec([None] * len(spec.shape), tf.float64)
            if spec.shape.rank is not None
            else tf.TensorSpec(None, tf.float64)
            for spec in self._signature
        ]

        def run(zero, *inputs):
            with tf.xla.experimental.jit_scope(compile_ops=False):
                return graph(zero, *inputs)

        return tf.function(
            run, input_signature=signature, autograph=False, jit_compile=False
        )

    def _elementwise_runs(self, nodes) -> list:
        """`nodes` (in order) as `(fused, nodes)` parts: each maximal run of
        float elementwise ops and table look-ups (`fused`), the other nodes
        one by one; constants come first, outside any run."""
        parts = [(False, [node for node in nodes if node.op == "Const"])]
        for node in nodes:
            if node.op == "Const":
                continue
            fusible = node.op in _TABLE_DOMAINS or (
                node.op in _ELEMENTWISE
                and getattr(_attr(node, "T"), "is_floating", True)
            )
            if fusible and parts[-1][0]:
                parts[-1][1].append(node)
            else:
                parts.append((fusible, [node]))
        return parts

    def _trace_nodes(self, part, values, kinds, tables, zero, defer=False):
        """Add `part`'s nodes to the graph being traced: their values and
        kinds into `values` and `kinds` (with `defer`, an `"int16"`
        product's as its `_IntegerSums`, kind `"sums"`)."""
        for node in part:
            if node.name in values or node.op == "NoOp":
                continue
            if node.op == "Const":
                value = np.asarray(self._constants[node.name])
                floating = np.issubdtype(value.dtype, np.floating)
                if floating:
                    value = value.astype(np.float64)
                values[node.name] = tf.constant(value)
                kinds[node.name] = "constant" if floating else "integer"
                continue
            inputs = [i for i in node.input if not i.startswith("^")]
            for i in inputs:
                _settle(values, kinds, i.split(":")[0], zero)
            args = [self._value(values, i) for i in inputs]
            arg_kinds = [kinds[i.split(":")[0]] for i in inputs]
            if defer and node.op in _PRODUCTS:
                values[node.name] = self._digit_product(node, args, fused=True)
                kinds[node.name] = "sums"
                continue
            if node.op in _TABLE_DOMAINS:
                # The table holds grid values: rounding again is the identity.
                values[node.name] = _tf_look_up_units(node.op, args[0], tables[node.op])
                kinds[node.name] = "units"
                continue
            values[node.name], kinds[node.name] = self._evaluate_units(
                node, args, arg_kinds, zero
            )

    def _trace_fused(self, part, values, kinds, tables, zero):
        """`_trace_nodes` of a run of elementwise nodes, as one XLA-compiled
        function of the computed tensors it reads, returning those that
        later nodes (or the outputs) read."""
        inside = {node.name for node in part}
        reads = []  # tensor names, e.g. "split:1"
        for node in part:
            for i in node.input:
                name = i.split(":")[0]
                if i.startswith("^") or name in inside or name in self._constants:
                    continue
                if i not in reads:
                    reads.append(i)
        read_later = {
            i.split(":")[0].lstrip("^")
            for node in self._nodes.values()
            if node.name not in inside
            for i in node.input
        } | {t.split(":")[0] for t in self._outputs}
        returns = [node.name for node in part if node.name in read_later]
        out_kinds = {}

        # A product's integer sums are read as they are, and scaled inside.
        deferred = [kinds[i.split(":")[0]] == "sums" for i in reads]

        def run(zero, *tensors):
            local, local_kinds = dict(values), dict(kinds)  # constants, captured
            tensors = list(tensors)
            for i, is_sums in zip(reads, deferred):
                name, _, index = i.partition(":")
                if is_sums:
                    sums, scale = tensors.pop(0), tensors.pop(0)
                    local[name] = values[name]._replace(sums=sums, scale=scale)
                elif isinstance(values[name], list):  # one output of several
                    local[name] = list(local[name])
                    local[name][int(index or 0)] = tensors.pop(0)
                else:
                    local[name] = tensors.pop(0)
            self._trace_nodes(part, local, local_kinds, tables, zero)
            out_kinds.update({name: local_kinds[name] for name in returns})
            return [local[name] for name in returns]

        function = tf.function(run, autograph=False, jit_compile=True)
        arguments = []
        for i, is_sums in zip(reads, deferred):
            value = self._value(values, i)
            arguments += [value.sums, value.scale] if is_sums else [value]
        outs = function(zero, *arguments)
        for name, out in zip(returns, outs):
            values[name], kinds[name] = out, out_kinds[name]

    def _evaluate_units(self, node, args, kinds, zero) -> tuple:
        """One node of the compiled graph: `(value, kind)` from its inputs'
        values and kinds (`"units"`: a grid tensor in units of the step;
        `"constant"`: a float weight as it is; `"integer"`). Each rule gives
        the interpreter's value times `2**16` exactly: scaling by a power of
        two commutes with every correctly rounded operation. A value in
        units is never -0.0 (each rule keeps it so), and a clip that cannot
        change a value is left out."""
        op = node.op
        if op in _STRUCTURAL:
            return self._structural_units(node, args, kinds)
        if op in _PRODUCTS:  # the weights' integer sums, in units: exact
            if self.products == "int16":
                return _round_units(self._digit_product(node, args), zero), "units"
            return _round_units(self._product(node, args), zero), "units"
        dtype = _attr(node, "T")
        if dtype is not None and not dtype.is_floating:  # shapes, indices
            return _ELEMENTWISE[op][1](*args), "integer"
        units = [k == "units" for k in kinds]
        scaled = [a if u else a * _SCALE for a, u in zip(args, units)]
        if op in ("Add", "AddV2", "BiasAdd", "Sub"):
            out = scaled[0] - scaled[1] if op == "Sub" else scaled[0] + scaled[1]
            if all(units):  # a sum of grid values is one, and never -0.0
                return _clip_units(out), "units"
            return _round_units(out, zero), "units"
        if op == "Mul":
            out = args[0] * args[1]
            if all(units):
                return _round_units(out * _STEP, zero), "units"
            weight = self._constants.get(node.input[units.index(False)].split(":")[0])
            if weight is not None and np.all(np.abs(weight) <= 1.0):  # no clip
                return tf.round(out) + zero, "units"
            return _round_units(out, zero), "units"
        if op == "RealDiv":
            if units[1]:  # x / y = U / V; c / x = c * 2**16 / U
                out = (scaled[0] / args[1]) * _SCALE
            else:
                out = args[0] / args[1]
            return _round_units(out, zero), "units"
        if op in ("Maximum", "Minimum"):
            out = _ELEMENTWISE[op][1](scaled[0], scaled[1])
            if all(units):
                return out, "units"
            return _round_units(out, zero), "units"
        if op in _EXACT_ON_GRID:  # of a grid value: a grid value
            # Values in units are never -0.0, so neither are these.
            if op == "Neg":
                return zero - args[0], "units"  # +0.0 - (+0.0) is +0.0
            if op == "Relu6":
                return tf.clip_by_value(args[0], 0.0, 6.0 * _SCALE), "units"
            return _ELEMENTWISE[op][1](args[0]), "units"
        if op == "Square":
            return _round_units(args[0] * args[0] * _STEP, zero), "units"
        if op == "Sqrt":  # sqrt(x) * 2**16 = sqrt(U) * 2**8
            return _round_units(tf.sqrt(args[0]) * 2.0**8, zero), "units"
        if op == "Rsqrt":  # 2**16 / sqrt(x) = 2**24 / sqrt(U)... as 1 / sqrt
            out = (1.0 / tf.sqrt(args[0])) * 2.0**24
            return _round_units(out, zero), "units"
        # Any other op: on the values themselves (an exact scaling back).
        plain = [a * _STEP if u else a for a, u in zip(args, units)]
        out = _ELEMENTWISE[op][1](*plain)
        return _round_units(out * _SCALE, zero), "units"

    def _structural_units(self, node, args, kinds) -> tuple:
        """Ops that move values: the same on values in units, float
        constants among their data scaled to units first."""
        if node.op == "Cast":
            target = _attr(node, "DstT")
            if kinds[0] == "units" and not target.is_floating:
                return tf.cast(args[0] * _STEP, target), "integer"
            if kinds[0] != "units" and target.is_floating:
                return tf.cast(args[0], tf.float64) * _SCALE, "units"
            return args[0], kinds[0]
        data = [
            a * _SCALE if k == "constant" and any(k == "units" for k in kinds) else a
            for a, k in zip(args, kinds)
        ]
        out = _STRUCTURAL[node.op](*data, node=node)
        if not (out[0] if isinstance(out, list) else out).dtype.is_floating:
            kind = "integer"  # e.g. a shape
        elif any(k == "units" for k in kinds):
            kind = "units"
        elif any(k == "constant" for k in kinds):
            kind = "constant"
        else:
            kind = "integer"
        return out, kind

    def _product(self, node, args, weights=None):
        """A matrix product or convolution of `args` (tensors or float64
        arrays) with the node's quantized weights (or `weights`), in
        TensorFlow's kernels (exact: see above), before rounding."""
        if weights is None:
            weights = tf.constant(self._weights[node.name])
        if node.op == "MatMul":
            a = tf.transpose(args[0]) if _attr(node, "transpose_a", False) else args[0]
            out = tf.linalg.matmul(a, weights)
        elif node.op == "Einsum":
            x = args[0]
            flat = tf.reshape(x, [-1, weights.shape[0]])
            out = tf.reshape(
                tf.linalg.matmul(flat, weights),
                tf.concat([tf.shape(x)[:-1], [weights.shape[1]]], axis=0),
            )
        elif node.op == "Conv2D":
            out = tf.nn.conv2d(
                args[0],
                weights,
                strides=_attr(node, "strides"),
                padding=_padding(node),
                dilations=_attr(node, "dilations"),
            )
        else:  # Conv2DBackpropInput
            out = tf.raw_ops.Conv2DBackpropInput(
                input_sizes=args[0],
                filter=weights,
                out_backprop=args[2],
                strides=_attr(node, "strides"),
                padding=_attr(node, "padding"),
                explicit_paddings=_attr(node, "explicit_paddings") or [],
                dilations=_attr(node, "dilations"),
            )
        return out

    def _digit_product(self, node, args, fused=False):
        """The `"int16"` product of `args` (in units) with the node's integer
        weights, in units, before rounding: each item's activations rounded
        to 16-bit integers times a power of two (`_block_round`), their
        exact integer sums scaled in float64 (exact). With `fused` (the XLA
        graph), a product of many terms splits the integers into two digits,
        each multiplied in float32 (exact: sums of at most 2**24), made by
        one XLA-compiled function; and the product is returned as its
        `_IntegerSums`, recombined where it is read."""
        integers, steps, terms = self._integer_weights[node.name]
        node, args, data = _activations_first(node, args, tf.transpose)
        x = args[data]
        # The same sums either way: two float32 products of the digits, or
        # one float64 product of the 16-bit integers (sums of at most 2**32:
        # exact). The digits pay where XLA fuses their split and
        # recombination into the elementwise runs around the product, for
        # products of many terms; otherwise their extra passes over memory
        # cost more than float64's slower kernels save.
        split = fused and terms >= _DIGITS_MIN_TERMS and _float32_sums_are_exact()
        kind = tf.float32 if split else tf.float64
        if split:
            operand, scale = _split_digits_xla(x, kind)
        else:
            operand, scale = (_block_integers_xla if fused else _block_integers)(x)
        weights = tf.constant(integers, kind)
        if node.op == "Conv2DBackpropInput" and split:  # twice the items
            args[0] = tf.concat([[2 * args[0][0]], args[0][1:]], axis=0)
        args[data] = operand
        sums = self._product(node, args, weights)
        deferred = _IntegerSums(sums, scale, steps, split)
        return deferred if fused else _combine_digits(*deferred)


_CHUNK_POOLS = {}
_CHUNK_POOLS_LOCK = threading.Lock()


def _chunk_pool(threads: int) -> concurrent.futures.ThreadPoolExecutor:
    """The thread pool of `threads` workers that chunks run in, one per
    process and size."""
    with _CHUNK_POOLS_LOCK:
        if threads not in _CHUNK_POOLS:
            _CHUNK_POOLS[threads] = concurrent.futures.ThreadPoolExecutor(
                threads, thread_name_prefix="fixed-point-chunk"
            )
        return _CHUNK_POOLS[threads]


@contextlib.contextmanager
def _graph_as_written():
    """Graph functions called inside are instantiated without TensorFlow's
    graph rewriting (Grappler), on this thread: the graph is the rules' ops,
    as written, with nothing for an optimizer to gain and bits it must not
    change (a rewrite of float arithmetic could); and Grappler's pass over
    the lossless colour codec's posterior network took 0.6 to 0.9 s of its
    first call (1.1 to 1.3 s with it, 0.4 to 0.5 s without). The options
    are part of the call, so every call of the graphs goes through here."""
    ctx = context.context()
    options = ctx.function_call_options
    plain = config_pb2.ConfigProto()
    plain.ParseFromString(options.config_proto_serialized)
    plain.graph_options.rewrite_options.disable_meta_optimizer = True
    ctx.function_call_options = context.FunctionCallOptions(
        executor_type=options.executor_type, config_proto=plain
    )
    try:
        yield
    finally:
        ctx.function_call_options = options


def _block_round(x) -> np.ndarray:
    """`x` (grid values, items along the first axis) rounded, per item, to
    16 significant bits: to multiples of `2**(s - 16)` with the smallest
    `s >= 0` that keeps them within `2**15` such steps (block floating
    point; values already within `2**15` grid steps stay as they are)."""
    units = np.asarray(x, np.float64) * _SCALE
    # The largest magnitude per item, NaN ignored; an input of rank 0 or 1
    # is one item.
    axes = tuple(range(1, units.ndim)) if units.ndim >= 2 else None
    magnitude = np.where(np.isnan(units), 0.0, np.abs(units))
    largest = np.max(magnitude, axis=axes, keepdims=True, initial=0.0)
    _, exponent = np.frexp(largest)  # largest < 2**exponent
    shift = np.maximum(exponent - (PRODUCT_BITS - 1), 0)
    rounded = np.ldexp(np.rint(np.ldexp(units, -shift)), shift)
    return rounded * _STEP


def _block_integers(x):
    """`x` (in units, items along the first axis) as 16-bit integers per
    item, `q * scale` with `|q| <= 2**15` and `scale` a power of two (the
    smallest from 1 up): `(q, scale)`, float64, `scale` of shape `(items,
    1, ...)`."""
    # The largest magnitude per item, NaN ignored (as `_block_round`: a max
    # must not depend on how a kernel treats NaN); rank 0 or 1: one item.
    rank = x.shape.rank
    if rank is None:
        raise NotSupportedError("A product's input of unknown rank.")
    axes = list(range(1, rank)) if rank >= 2 else None
    magnitude = tf.where(tf.math.is_nan(x), tf.zeros_like(x), tf.abs(x))
    largest = tf.reduce_max(magnitude, axis=axes, keepdims=True)
    largest = tf.maximum(largest, 0.0)  # no items: no -inf
    # floor(log2(largest)) + 1023 from the float64's exponent bits: exact.
    biased = tf.bitwise.right_shift(tf.bitcast(largest, tf.int64), 52)
    shift = tf.maximum(biased - (1023 + PRODUCT_BITS - 2), 0)
    scale = tf.bitcast(tf.bitwise.left_shift(shift + 1023, 52), tf.float64)
    return tf.round(x / scale), scale


def _split_digits(x, kind):
    """`x` (in units, items along the first axis) as 16-bit integers per
    item, `q * scale` with `|q| <= 2**15` and `scale` a power of two (the
    smallest from 1 up), split into digits `q = high * 2**8 + low`,
    `|high|, |low| <= 2**7`: the digits as one tensor of type `kind` (the
    highs of all items, then the lows), and `scale`, shape `(items, 1,
    ...)`."""
    q, scale = _block_integers(x)
    high = tf.round(q / _DIGIT)
    low = q - high * _DIGIT
    return tf.cast(tf.concat([high, low], axis=0), kind), scale


_split_digits_xla = tf.function(_split_digits, autograph=False, jit_compile=True)
_block_integers_xla = tf.function(_block_integers, autograph=False, jit_compile=True)


# An "int16" product not yet scaled: the integer `sums` (with `split`, the
# high digits' then the low digits'), the items' `scale` and the output
# channels' `steps`.
_IntegerSums = collections.namedtuple("_IntegerSums", "sums scale steps split")


def _combine_digits(sums, scale, steps, split):
    """The product in units from its integer sums: exact in float64."""
    if split:
        items = tf.shape(sums)[0] // 2
        high = tf.cast(sums[:items], tf.float64)
        sums = high * _DIGIT + tf.cast(sums[items:], tf.float64)
    return sums * (scale * steps)  # powers of two: exact


def _settle(values, kinds, name, zero):
    """Recombine and round `values[name]` if it is a deferred product."""
    if kinds.get(name) == "sums":
        digits = values[name]
        values[name] = _round_units(_combine_digits(*digits), zero)
        kinds[name] = "units"


def _activations_first(node, args, transpose) -> tuple:
    """`(node, args, data)` for a product: `args` as a list whose element
    `data` holds the activations with their items along the first axis (a
    MatMul's `transpose_a` operand transposed with `transpose`, and `node`
    a copy without it)."""
    args = list(args)
    if node.op == "MatMul" and _attr(node, "transpose_a", False):
        args[0] = transpose(args[0])
        copy = type(node)()
        copy.CopyFrom(node)
        copy.attr["transpose_a"].b = False
        node = copy
    return node, args, 2 if node.op == "Conv2DBackpropInput" else 0


# oneDNN's settings for float32 math in lower precision: anything but
# strict float32 lets its kernels round products (bf16, tf32).
_FPMATH_VARIABLES = ("ONEDNN_DEFAULT_FPMATH_MODE", "TF_SET_ONEDNN_FPMATH_MODE")


@functools.cache
def _float32_sums_are_exact() -> bool:
    """Whether this process's float32 products sum exactly in float32.

    The `"int16"` digit products rely on it, and a kernel library set to
    compute float32 products in lower precision (oneDNN's bf16 or TF32
    "fpmath" modes, TensorFloat-32 on GPUs) breaks it. So: False if one of
    `_FPMATH_VARIABLES` asks oneDNN for anything but strict float32; else a
    probe of each kind of product the digits use (a 5x5 convolution of 64
    channels, a matrix product of 1,600 terms, a 5x5 stride-2 transposed
    convolution), in a graph run as the codec's graphs run: 8-bit digits
    against integer weights of up to 17 bits, each output channel's
    weights summing to `2**17 - 1` in absolute value, compared with the
    float64 kernels' sums (exact: far below 2**53). Where it fails, the
    products run in float64 (one product of the 16-bit integers): the same
    sums, slower. Called once per process, at the first trace of an XLA
    graph with a product of many terms."""
    for variable in _FPMATH_VARIABLES:
        mode = os.environ.get(variable, "").strip().upper()
        if mode not in ("", "STRICT", "F32", "FP32"):
            return False
    rng = np.random.default_rng(0)
    digits = rng.integers(-128, 129, size=(2, 12, 12, 64)).astype(np.float64)
    kernel = rng.integers(-63, 64, size=(5, 5, 64, 32)).astype(np.float64)
    l1 = np.abs(kernel).sum(axis=(0, 1, 2)) - np.abs(kernel[0, 0, 0])
    kernel[0, 0, 0] = 2**17 - 1 - l1  # one weight of 17 bits per output
    transposed = np.swapaxes(kernel, 2, 3)  # (5, 5, out=32, in=64)

    def products(x, k, t):
        return (
            tf.nn.conv2d(x, k, 1, "SAME"),
            tf.linalg.matmul(
                tf.reshape(x[:, :5, :5], [-1, 1600]), tf.reshape(k, [1600, 32])
            ),
            tf.nn.conv2d_transpose(x, t, [2, 24, 24, 32], 2, "SAME"),
        )

    probe = tf.function(products, autograph=False)
    with tf.init_scope(), tf.device("/CPU:0"), _graph_as_written():
        fast = probe(
            *(tf.constant(a, tf.float32) for a in (digits, kernel, transposed))
        )
        exact = probe(*(tf.constant(a) for a in (digits, kernel, transposed)))
    return all(
        np.array_equal(np.asarray(a, np.float64), np.asarray(b))
        for a, b in zip(fast, exact)
    )


# The same rules as TensorFlow float64 ops, for the compiled graph. TensorFlow's
# float64 kernels use the same correctly rounded operations (and products of
# the same exact integer sums), so the graph gives the interpreter's bits; the
# tests check it on every preset's networks.


def _round_units(x, zero):
    """`to_grid` of values in units: round half to even, clip, and no -0.0
    (`zero` is a 0.0 the graph receives as an input: unlike a constant zero,
    graph optimization cannot remove the addition)."""
    return _clip_units(tf.round(x)) + zero


def _clip_units(x):
    limit = ACTIVATION_LIMIT * _SCALE
    return tf.clip_by_value(x, -limit, limit)


def _tf_look_up_units(op, units, table):
    """`op`'s function of grid values, in units, from its `table` (a
    constant, in units)."""
    _, low, _ = _TABLE_DOMAINS[op]
    offset = round(low * _SCALE)
    index = tf.clip_by_value(units, offset, offset + table.shape[0] - 1)
    return tf.gather(table, tf.cast(index - offset, tf.int64))


# Ops of one computed (so grid) tensor whose result is again a grid value in
# the clipping range: rounding it would change nothing, so the graph skips it.
_EXACT_ON_GRID = {"Neg", "Abs", "Relu", "Relu6"}


def _tf_strided_slice(x, begin, end, strides, node):
    masks = (
        "begin_mask",
        "end_mask",
        "ellipsis_mask",
        "new_axis_mask",
        "shrink_axis_mask",
    )
    return tf.raw_ops.StridedSlice(
        input=x,
        begin=begin,
        end=end,
        strides=strides,
        **{mask: _attr(node, mask, 0) for mask in masks},
    )


# Ops that move or reshape values (or compute shapes) without arithmetic, as
# TensorFlow ops: traced into the graph, run eagerly by the interpreter.
_STRUCTURAL = {
    "Identity": lambda x, node: x,
    "Reshape": lambda x, shape, node: tf.reshape(x, shape),
    "Prod": lambda x, axis, node: tf.reduce_prod(  # of integers (a shape) only
        x, axis=axis, keepdims=_attr(node, "keep_dims", False)
    ),
    "Squeeze": lambda x, node: tf.squeeze(x, axis=_attr(node, "squeeze_dims") or None),
    "ExpandDims": lambda x, axis, node: tf.expand_dims(x, axis),
    "Shape": lambda x, node: tf.shape(x, out_type=_attr(node, "out_type")),
    "Pack": lambda *xs, node: tf.stack(xs, axis=_attr(node, "axis", 0)),
    "ConcatV2": lambda *xs, node: tf.concat(xs[:-1], axis=xs[-1]),
    "Transpose": lambda x, perm, node: tf.transpose(x, perm),
    "Cast": lambda x, node: tf.cast(x, _cast_type(node)),
    "StridedSlice": _tf_strided_slice,
    "Split": lambda axis, x, node: tf.split(x, _attr(node, "num_split"), axis=axis),
    "SplitV": lambda x, sizes, axis, node: tf.split(x, sizes, axis=axis),
}
