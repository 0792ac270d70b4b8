"""One frame of a sequence model's sampler as an ONNX graph that runs any number of Gibbs steps.

The math is traced once from torch (:mod:`seqboltz.export._onnx`) as three parts of
:meth:`~seqboltz.models.SequenceRBM.next_frame` side by side in one graph:

* the start, ``history [, style] [, controls] → state0`` (and the frame's context: dynamic
  biases, gates, which stay values of the graph);
* one Gibbs step, ``(state_in, u_step) → state_next`` (``u_step`` one row of the noise);
* the emit, ``(state_emit, u_emit) → frame`` (mean-field last step; ``u_emit`` the last row).

:func:`loop_frame_graph` rewires them into ``history, noise (B, k, W) [, style] [, controls] →
frame (B, D)``: the start's nodes (and everything else that does not depend on a step's or the
emit's inputs: weights' transposes, the context) run once; the step's nodes become the body of
an ONNX ``Loop`` whose trip count is ``k = noise.shape[1]`` and which reads row ``i`` of
``noise`` at iteration ``i``; the emit reads row ``k - 1``. Every node is the traced one, so
a frame at ``k`` is computed by the same operations, in the same order, as a graph with the
``k`` steps unrolled (the graph that artifacts of schema 1 without ``max_gibbs_steps`` hold).

This module needs ``onnx`` only (no torch).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "EMIT_INPUTS",
    "PART_OUTPUTS",
    "STEP_INPUTS",
    "LoopGraphError",
    "loop_frame_graph",
]

#: the traced graph's inputs of one Gibbs step and of the emit, and its three outputs
STEP_INPUTS = ("state_in", "u_step")
EMIT_INPUTS = ("state_emit", "u_emit")
PART_OUTPUTS = ("state0", "state_next", "frame")

_K = "seqboltz_gibbs_steps"  # k = noise.shape[1], the Loop's trip count
_LAST = "seqboltz_last_step"  # k - 1
_ITER, _COND_IN, _COND_OUT = "seqboltz_step", "seqboltz_cond_in", "seqboltz_cond_out"
_NOISE_SHAPE, _ONE, _STATE_K = "seqboltz_noise_shape", "seqboltz_one", "state_emit"


class LoopGraphError(ValueError):
    """The traced parts cannot be rewired (a node that needs both a step's and the emit's
    inputs, or the expected inputs/outputs are missing), with the reason."""


def _depends(graph: Any) -> dict[str, str]:
    """Node output → ``"step"``, ``"emit"`` or ``"main"``: which part's inputs it depends on."""
    part = dict.fromkeys(STEP_INPUTS, "step") | dict.fromkeys(EMIT_INPUTS, "emit")
    for node in graph.node:
        if any(attr.type in (attr.GRAPH, attr.GRAPHS) for attr in node.attribute):
            raise LoopGraphError(f"the traced sampler holds a {node.op_type} with a subgraph")
        parts = {part.get(name, "main") for name in node.input if name} - {"main"}
        if len(parts) > 1:
            raise LoopGraphError(
                f"node {node.name or node.op_type} reads both a Gibbs step's and the emit's "
                "inputs: the sampler's parts are not separable"
            )
        for name in node.output:
            part[name] = parts.pop() if parts else "main"
    return part


def loop_frame_graph(proto: Any, noise_width: int, *, k_name: str = "gibbs_steps") -> Any:
    """Rewire the traced sampler parts (see the module) into one frame graph with a ``Loop``.

    Args:
        proto: the traced ``onnx.ModelProto`` with inputs ``history``, :data:`STEP_INPUTS`,
            :data:`EMIT_INPUTS` and then the conditioning (``style``, ``controls``), and
            outputs :data:`PART_OUTPUTS`. Changed in place and returned.
        noise_width: ``W``, columns of the noise.
        k_name: the symbolic name of the noise's ``k`` dimension.

    Returns:
        ``proto``: inputs ``history, noise (B, k, W), *conditioning``, output ``frame``.

    Raises:
        LoopGraphError: the parts are not separable, or inputs/outputs are missing.
    """
    from onnx import TensorProto, helper, numpy_helper

    graph = proto.graph
    inputs = {i.name: i for i in graph.input}
    outputs = {o.name: o for o in graph.output}
    missing = [n for n in ("history", *STEP_INPUTS, *EMIT_INPUTS) if n not in inputs]
    missing += [n for n in PART_OUTPUTS if n not in outputs]
    if missing:
        raise LoopGraphError(f"the traced sampler lacks {missing}")
    part = _depends(graph)
    if part.get("state0") != "main" or part.get("frame") != "emit":
        raise LoopGraphError(
            "the chain's start must not read a step's inputs, and the frame must come from the emit"
        )
    if part.get("state_next") != "step":
        raise LoopGraphError("a Gibbs step's state must depend on its inputs")

    main = [n for n in graph.node if all(part[o] == "main" for o in n.output)]
    step = [n for n in graph.node if any(part[o] == "step" for o in n.output)]
    emit = [n for n in graph.node if any(part[o] == "emit" for o in n.output)]
    info = {v.name: v for v in graph.value_info}
    state_type = inputs["state_in"].type
    batch = inputs["history"].type.tensor_type.shape.dim[0]

    noise = helper.make_tensor_value_info("noise", TensorProto.DOUBLE, None)
    noise_shape = noise.type.tensor_type.shape
    noise_shape.dim.add().CopyFrom(batch)
    noise_shape.dim.add().dim_param = k_name
    noise_shape.dim.add().dim_value = noise_width

    # the body: row i of the noise, one Gibbs step; the loop runs k times (no condition)
    body_in = [
        helper.make_tensor_value_info(_ITER, TensorProto.INT64, []),
        helper.make_tensor_value_info(_COND_IN, TensorProto.BOOL, []),
        helper.make_value_info("state_in", state_type),
    ]
    body_out = [
        helper.make_tensor_value_info(_COND_OUT, TensorProto.BOOL, []),
        helper.make_value_info("state_next", outputs["state_next"].type),
    ]
    body_nodes = [
        helper.make_node("Identity", [_COND_IN], [_COND_OUT]),
        helper.make_node("Gather", ["noise", _ITER], ["u_step"], axis=1),
        *step,
    ]
    body = helper.make_graph(
        body_nodes,
        "gibbs_step",
        body_in,
        body_out,
        value_info=[info[o] for n in step for o in n.output if o in info],
    )
    loop_nodes = [
        helper.make_node("Shape", ["noise"], [_NOISE_SHAPE]),
        helper.make_node("Gather", [_NOISE_SHAPE, _ONE], [_K], axis=0),
        helper.make_node("Loop", [_K, "", "state0"], [_STATE_K], body=body),
        helper.make_node("Sub", [_K, _ONE], [_LAST]),
        helper.make_node("Gather", ["noise", _LAST], ["u_emit"], axis=1),
    ]
    conditioning = [i for i in graph.input if i.name not in ("history", *STEP_INPUTS, *EMIT_INPUTS)]
    new_inputs = [inputs["history"], noise, *conditioning]
    new_output = outputs["frame"]
    kept_info = [v for v in graph.value_info if part.get(v.name) != "step"]
    del graph.node[:]
    graph.node.extend([*main, *loop_nodes, *emit])
    del graph.input[:]
    graph.input.extend(new_inputs)
    del graph.output[:]
    graph.output.append(new_output)
    del graph.value_info[:]
    graph.value_info.extend(kept_info)
    graph.initializer.append(numpy_helper.from_array(np.array(1, dtype=np.int64), _ONE))
    return proto
