"""Several frames in one onnxruntime call: a frame graph wrapped in an ONNX ``Loop`` over
frames (onnx only; no torch).

The service computes a message's frames ahead, ``n`` frames of many streams at once
(:func:`~seqboltz.runtime.step_frames`). Frame by frame that is ``n`` calls, each returning to
Python between frames to shift the history window; under load each return waits for the GIL
(measured in ``benchmarks/RESULTS.md``, session 8). :func:`frames_graph` writes that loop into
the graph: iteration ``t`` takes the noise of frame ``t``, runs the frame graph's nodes
unchanged (the same nodes in the same order, so the same frames bit for bit) and shifts the
window, which is the loop's state. :meth:`Artifact.steps` runs it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["frames_graph"]

PREFIX = "seqboltz_frames/"


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
    inputs = {i.name: i for i in graph.input}
    if (
        "history" not in inputs
        or "noise" not in inputs
        or [o.name for o in graph.output] != ["frame"]
    ):
        raise ValueError("not a frame graph (history, noise -> frame)")

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
