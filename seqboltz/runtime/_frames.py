"""Several frames in one onnxruntime call: a frame graph wrapped in an ONNX ``Loop`` over
frames (onnx only; no torch).

The service computes a message's frames ahead, ``n`` frames of many streams at once
(:func:`~seqboltz.runtime.step_frames`). Frame by frame that is ``n`` calls, each returning to
Python between frames to shift the history window; under load each return waits for the GIL
(measured in ``benchmarks/RESULTS.md``, session 8). :func:`frames_graph` writes that loop into
the graph: iteration ``t`` takes the noise of frame ``t``, runs the frame graph's nodes
unchanged (the same nodes in the same order, so the same frames bit for bit) and shifts the
window, which is the loop's state. :meth:`Artifact.steps` runs it.

:func:`block_graph` writes a fixed number of frames out as straight-line code instead (no
``Loop``), for a frame graph without subgraphs (the card's ``k``), and drops the per-frame
bookkeeping onnxruntime would run as kernels (the noise's shape, row gathers, the window's
shift). The frames' arithmetic is the same nodes in the same order, so the same bits.
:meth:`Artifact.steps` runs whole blocks through it where its graph is small
(``BLOCK_NODES``); :meth:`Artifact.generate` advances a block a call.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

__all__ = ["block_graph", "frames_graph"]

PREFIX = "seqboltz_frames/"


def _frame_graph_inputs(graph: Any) -> dict[str, Any]:
    """A frame graph's inputs by name; ``ValueError`` unless it maps (history, noise, …) to
    one output ``frame``."""
    inputs = {i.name: i for i in graph.input}
    if (
        "history" not in inputs
        or "noise" not in inputs
        or [o.name for o in graph.output] != ["frame"]
    ):
        raise ValueError("not a frame graph (history, noise -> frame)")
    return inputs


def frames_graph(proto: Any, order: int) -> Any:
    """A copy of a frame graph (inputs ``history (B, order, D)``, ``noise (B, k, W)``, optional
    ``style``/``controls``; output ``frame (B, D)``) that computes ``n`` frames: inputs
    ``history (B, order, D)``, ``noise (B, n, k, W)`` and the same conditioning, output
    ``frames (B, n, D)``; frame ``t`` is the frame graph on the window after frames
    ``0..t-1`` (most recent first) and frame ``t``'s noise.

    The frame graph's nodes become the body of a ``Loop`` whose state is ``history`` and whose
    iteration reads ``noise`` (both under the graph's own names inside the body, so nested
    subgraphs such as a Gibbs-step ``Loop`` are kept as they are); the weights stay outer
    initializers.
    """
    from onnx import TensorProto, helper, numpy_helper

    if order < 1:
        raise ValueError(f"order must be >= 1, got {order}")
    graph = proto.graph
    inputs = _frame_graph_inputs(graph)

    def const(name: str, values: list[int]) -> Any:
        value = numpy_helper.from_array(np.array(values, dtype=np.int64), PREFIX + name)
        return helper.make_node("Constant", [], [PREFIX + name], value=value)

    i, cond_in, cond_out = PREFIX + "t", PREFIX + "cond_in", PREFIX + "cond_out"
    body_nodes = [
        # the scalar index selects frame t's noise (B, k, W): Gather drops the axis
        helper.make_node("Gather", [PREFIX + "noise", i], ["noise"], axis=1),
        *graph.node,  # the frame: history, noise -> frame (B, D)
        helper.make_node("Identity", [cond_in], [cond_out]),
        const("axis1", [1]),
        const("zero", [0]),
        const("keep", [order - 1]),
        helper.make_node("Unsqueeze", ["frame", PREFIX + "axis1"], [PREFIX + "newest"]),
        helper.make_node(
            "Slice",
            ["history", PREFIX + "zero", PREFIX + "keep", PREFIX + "axis1"],
            [PREFIX + "older"],
        ),
        helper.make_node(
            "Concat", [PREFIX + "newest", PREFIX + "older"], [PREFIX + "next_history"], axis=1
        ),
        helper.make_node("Identity", ["frame"], [PREFIX + "frame"]),
    ]
    history = inputs["history"]
    body = helper.make_graph(
        body_nodes,
        PREFIX + "body",
        [
            helper.make_tensor_value_info(i, TensorProto.INT64, []),
            helper.make_tensor_value_info(cond_in, TensorProto.BOOL, []),
            history,
        ],
        [
            helper.make_tensor_value_info(cond_out, TensorProto.BOOL, []),
            helper.make_tensor_value_info(PREFIX + "next_history", TensorProto.DOUBLE, [None] * 3),
            helper.make_tensor_value_info(PREFIX + "frame", TensorProto.DOUBLE, [None] * 2),
        ],
    )
    outer_nodes = [
        helper.make_node("Shape", [PREFIX + "noise"], [PREFIX + "noise_shape"]),
        const("n_index", [1]),
        helper.make_node(
            "Gather", [PREFIX + "noise_shape", PREFIX + "n_index"], [PREFIX + "n_frames"], axis=0
        ),
        helper.make_node("Squeeze", [PREFIX + "n_frames"], [PREFIX + "trips"]),
        helper.make_node(
            "Loop",
            [PREFIX + "trips", "", PREFIX + "history"],
            [PREFIX + "last_history", PREFIX + "by_frame"],  # (B, order, D), (n, B, D)
            body=body,
        ),
        helper.make_node("Transpose", [PREFIX + "by_frame"], ["frames"], perm=[1, 0, 2]),
    ]
    renamed = {"history": PREFIX + "history", "noise": PREFIX + "noise"}
    shapes: dict[str, list[str | int | None]] = {
        "history": ["batch", order, None],
        "noise": ["batch", "frames", None, None],
    }
    outer_inputs = []
    for x in graph.input:
        if x.name in renamed:
            x = helper.make_tensor_value_info(renamed[x.name], TensorProto.DOUBLE, shapes[x.name])
        outer_inputs.append(x)
    out = helper.make_model(
        helper.make_graph(
            outer_nodes,
            PREFIX + "graph",
            outer_inputs,
            [
                helper.make_tensor_value_info(
                    "frames", TensorProto.DOUBLE, ["batch", "frames", None]
                )
            ],
            initializer=list(graph.initializer),
        ),
        opset_imports=list(proto.opset_import),
        ir_version=proto.ir_version,
    )
    return out


BLOCK = "seqboltz_block/"
#: ops whose integer outputs :func:`block_graph` evaluates when their inputs are known (the
#: noise's ``k`` and the Gibbs steps' row numbers); none of them computes a float
_STATIC_OPS = ("Constant", "Shape", "Gather", "Sub", "Add", "Identity")


def block_graph(proto: Any, order: int, frame_size: int, gibbs_steps: int, n_frames: int) -> Any:
    """A copy of a frame graph without subgraphs (the card's ``k``, Gibbs steps written out)
    that computes exactly ``n_frames`` frames as straight-line code: inputs
    ``seqboltz_block/history (B, order, D)``, ``seqboltz_block/noise (B, n, k, W)`` and the
    frame graph's conditioning, output ``frames (B, n, D)``, the frames of :func:`frames_graph`
    (and of the frame graph called ``n`` times) bit for bit.

    Every float is computed by the frame graph's own nodes with their own attributes, once per
    frame, in the same order (so the same bits); what goes is bookkeeping that onnxruntime
    would otherwise run per frame, each costing a kernel call:

    * nodes that read neither ``history`` nor ``noise`` (weights' transposes, conditioning)
      run once for the block;
    * the noise's shape and the Gibbs steps' row numbers are known (``k = noise.shape[2]``):
      they are evaluated here, and each ``Gather(noise, j, axis=1)`` of frame ``t`` reads row
      ``(t, j)`` of one ``Split`` of the block's noise;
    * ``Gather(history, j, axis=1)`` is the frame ``j + 1`` frames back (or a row of the input
      window) and ``Reshape(history, [-1, order·D])`` the ``Concat`` of those rows, so the
      window is not shifted; a graph that reads ``history`` otherwise gets it as a ``Concat``;
    * ``Identity`` nodes become the values they copy.

    Raises:
        ValueError: not a frame graph, a node with a subgraph (a Gibbs-step ``Loop``), a noise
            without a known ``k``, or ``n_frames < 1``/``order < 1``.
    """
    from onnx import TensorProto, helper, numpy_helper

    if order < 1 or n_frames < 1:
        raise ValueError(f"order and n_frames must be >= 1, got {order} and {n_frames}")
    graph = proto.graph
    inputs = _frame_graph_inputs(graph)
    if any(a.type in (a.GRAPH, a.GRAPHS) for node in graph.node for a in node.attribute):
        raise ValueError("the frame graph holds a subgraph (a Gibbs-step Loop): no block graph")
    dims = inputs["noise"].type.tensor_type.shape.dim
    if len(dims) != 3 or not dims[2].HasField("dim_value"):
        raise ValueError("the frame graph's noise must be (B, k, W) with W known")
    width, k = int(dims[2].dim_value), gibbs_steps

    # integer values known here: int64 initializers, constants, the noise's shape and what
    # the static ops make of them (-1 marks the batch, which stays unknown)
    known: dict[str, np.ndarray] = {
        i.name: numpy_helper.to_array(i)
        for i in graph.initializer
        if i.data_type == TensorProto.INT64 and len(i.dims) <= 1
    }
    dropped: set[str] = set()  # outputs of nodes evaluated here
    batchy: set[str] = set()  # of those, values that hold the (unknown) batch size
    for node in graph.node:
        if _evaluate(node, known, batchy, (-1, k, width)):
            dropped.add(node.output[0])

    varying = {"history", "noise"}
    once, per = [], []
    for node in graph.node:
        if node.output[0] in dropped:
            continue
        if any(x in varying for x in node.input):
            per.append(node)
            varying.update(node.output)
        else:
            once.append(node)
    alias = {n.output[0]: n.input[0] for n in per if n.op_type == "Identity"}
    alias.pop("frame", None)
    per = [n for n in per if n.output[0] not in alias]

    def scalar(name: str) -> int | None:
        value = known.get(name)
        if value is None or value.size != 1 or (value < 0).any():
            return None
        return int(value.reshape(()))

    # how the per-frame nodes read the window and the noise
    rows_read: set[int] = set()
    whole_window = False
    noise_rows: dict[str, int] = {}  # a node's noise output -> Gibbs-step row
    window_rows: dict[str, int] = {}  # a node's window output -> row j (most recent first)
    flat: set[str] = set()  # Reshape(history, [-1, order·D]) outputs
    for node in per:
        for x in node.input:
            if x not in ("history", "noise"):
                continue
            axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
            index = scalar(node.input[1]) if len(node.input) > 1 else None
            if node.op_type == "Gather" and axis == 1 and index is not None and x == node.input[0]:
                if x == "noise" and index < k:
                    noise_rows[node.output[0]] = index
                    continue
                if x == "history" and index < order:
                    window_rows[node.output[0]] = index
                    rows_read.add(index)
                    continue
            if (
                x == "history"
                and node.op_type == "Reshape"
                and node.input[0] == x
                and _is_flat_shape(known.get(node.input[1]), order * frame_size)
            ):
                flat.add(node.output[0])
                rows_read.update(range(order))
                continue
            if x == "noise":
                raise ValueError(f"the frame graph reads the noise with {node.op_type}")
            whole_window = True
    if whole_window:
        rows_read.update(range(order))

    nodes: list[Any] = []

    def const(name: str, value: np.ndarray) -> str:
        nodes.append(
            helper.make_node("Constant", [], [name], value=numpy_helper.from_array(value, name))
        )
        return name

    # constants the kept nodes need, then the block's own bookkeeping, then the once nodes
    skipped = {*noise_rows, *window_rows, *flat}  # outputs replaced by the block's values
    per = [n for n in per if n.output[0] not in skipped]
    needed = {x for n in [*once, *per] for x in n.input} & dropped
    if needed & batchy:
        raise ValueError("the frame graph uses the noise's batch size")
    for name in sorted(needed):
        const(name, known[name])
    flat_noise = BLOCK + "noise_flat"
    nodes.append(
        helper.make_node(
            "Reshape",
            [BLOCK + "noise", const(BLOCK + "flat", np.array([0, -1], dtype=np.int64))],
            [flat_noise],
        )
    )
    pieces = [f"{BLOCK}noise_{t}_{j}" for t in range(n_frames) for j in range(k)]
    nodes.append(
        helper.make_node(
            "Split",
            [flat_noise, const(BLOCK + "split", np.full(n_frames * k, width, dtype=np.int64))],
            pieces,
            axis=1,
        )
    )
    given: dict[int, str] = {}  # window row j before frame 0: a row of the input history
    for j in sorted(rows_read):
        given[j] = f"{BLOCK}given_{j}"
        at = const(f"{BLOCK}given_index_{j}", np.array(j, dtype=np.int64))
        nodes.append(helper.make_node("Gather", [BLOCK + "history", at], [given[j]], axis=1))
    nodes.extend(once)

    frames: list[str] = []
    for t in range(n_frames):
        prefix = f"{BLOCK}{t}/"

        def row(j: int, t: int = t) -> str:  # window row j at frame t, (B, D)
            return frames[t - 1 - j] if j < t else given[j - t]

        local = {o for n in per for o in n.output}
        names = {x: prefix + x for x in local}
        for out, j in noise_rows.items():
            names[out] = pieces[t * k + j]
        for out, j in window_rows.items():
            names[out] = row(j)
        if flat:
            joined = prefix + "window_flat"
            nodes.append(
                helper.make_node("Concat", [row(j) for j in range(order)], [joined], axis=1)
            )
            names.update(dict.fromkeys(flat, joined))
        if whole_window:
            axis1 = const(f"{prefix}axis1", np.array([1], dtype=np.int64))
            rows = []
            for j in range(order):
                rows.append(f"{prefix}window_{j}")
                nodes.append(helper.make_node("Unsqueeze", [row(j), axis1], [rows[-1]]))
            nodes.append(helper.make_node("Concat", rows, [prefix + "history"], axis=1))
            names["history"] = prefix + "history"
        for out, src in alias.items():
            names[out] = names.get(src, src)
        for node in per:
            twin = copy.deepcopy(node)
            twin.input[:] = [names.get(x, x) if x else x for x in node.input]
            twin.output[:] = [names[o] for o in node.output]
            twin.name = prefix + node.name if node.name else ""
            nodes.append(twin)
        frames.append(names["frame"])
    joined = BLOCK + "frames_flat"
    nodes.append(helper.make_node("Concat", frames, [joined], axis=1))
    shape = const(BLOCK + "frames_shape", np.array([-1, n_frames, frame_size], dtype=np.int64))
    nodes.append(helper.make_node("Reshape", [joined, shape], ["frames"]))

    used = {x for n in nodes for x in n.input}
    outer_inputs = []
    for x in graph.input:
        if x.name == "history":
            x = helper.make_tensor_value_info(
                BLOCK + "history", TensorProto.DOUBLE, ["batch", order, frame_size]
            )
        elif x.name == "noise":
            x = helper.make_tensor_value_info(
                BLOCK + "noise", TensorProto.DOUBLE, ["batch", n_frames, k, width]
            )
        outer_inputs.append(x)
    return helper.make_model(
        helper.make_graph(
            nodes,
            BLOCK + "graph",
            outer_inputs,
            [
                helper.make_tensor_value_info(
                    "frames", TensorProto.DOUBLE, ["batch", n_frames, frame_size]
                )
            ],
            initializer=[i for i in graph.initializer if i.name in used],
        ),
        opset_imports=list(proto.opset_import),
        ir_version=proto.ir_version,
    )


def _evaluate(
    node: Any, known: dict[str, np.ndarray], batchy: set[str], noise_shape: tuple[int, ...]
) -> bool:
    """Evaluate an integer bookkeeping node into ``known`` when its inputs are known (the
    noise's shape is ``noise_shape``, ``-1`` its batch; values that hold it join ``batchy``);
    ``False``: it stays in the graph."""
    from onnx import helper, numpy_helper

    if node.op_type not in _STATIC_OPS or len(node.output) != 1:
        return False
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    out = node.output[0]
    if node.op_type == "Shape":
        if list(node.input) != ["noise"] or set(attrs) - {"start", "end"}:
            return False
        known[out] = np.array(noise_shape, dtype=np.int64)[attrs.get("start", 0) : attrs.get("end")]
        if attrs.get("start", 0) == 0:
            batchy.add(out)
        return True
    if node.op_type == "Constant":
        value = attrs.get("value")
        if set(attrs) != {"value"} or value is None:
            return False
        array = numpy_helper.to_array(value)
        if array.dtype != np.int64 or array.ndim > 1:
            return False
        known[out] = array
        return True
    if not node.input or any(x not in known for x in node.input):
        return False
    args = [known[x] for x in node.input]
    if node.op_type == "Identity":
        known[out] = args[0]
        holds = node.input[0] in batchy
    elif node.op_type == "Gather":
        if len(args) != 2 or attrs.get("axis", 0) != 0 or args[0].ndim != 1:
            return False
        index = args[1]
        if ((index < -len(args[0])) | (index >= len(args[0]))).any():
            return False
        known[out] = args[0][index]
        holds = node.input[0] in batchy and bool((index % len(args[0]) == 0).any())
    else:  # Sub, Add
        if len(args) != 2 or attrs:
            return False
        known[out] = args[0] - args[1] if node.op_type == "Sub" else args[0] + args[1]
        holds = bool(set(node.input) & batchy)
    if holds:
        batchy.add(out)
    return True


def _is_flat_shape(shape: np.ndarray | None, size: int) -> bool:
    """Whether a Reshape to ``shape`` turns ``(B, order, D)`` into ``(B, order·D)``."""
    return shape is not None and shape.shape == (2,) and shape[0] == -1 and shape[1] in (-1, size)
