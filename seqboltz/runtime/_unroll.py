"""Unroll a frame graph's Gibbs-step ``Loop`` for one ``k`` (onnx only; no torch).

An exported sequence artifact holds one frame of its sampler with the Gibbs steps in an ONNX
``Loop`` (:mod:`seqboltz.export._loop`), so one graph runs any ``k``. onnxruntime pays a few
microseconds per frame for the loop (5–9 % of a frame at batch 1 here, nothing measurable at
batch 256; ``benchmarks/RESULTS.md``), so the runtime runs the card's ``k`` — what nearly every
stream uses — through a copy of the graph with the loop's body written out ``k`` times: the same
nodes in the same order, hence the same frames bit for bit, at the speed of a graph exported
with ``k`` unrolled. Other ``k`` run through the loop.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

__all__ = ["find_gibbs_loop", "unroll_gibbs_loop"]


def find_gibbs_loop(proto: Any) -> Any | None:
    """The graph's ``Loop`` node over the noise's rows, or ``None`` (a graph with ``k``
    unrolled at export, or an unconditional model's Gibbs step)."""
    loops = [n for n in proto.graph.node if n.op_type == "Loop"]
    return loops[0] if len(loops) == 1 else None


def unroll_gibbs_loop(proto: Any, k: int) -> Any:
    """A copy of ``proto`` whose Gibbs-step ``Loop`` is written out ``k`` times (``k ≥ 1``).

    Iteration ``i`` is the loop's body with its iteration number a constant ``i``, its state
    input the previous iteration's state output (the loop's initial state for ``i = 0``) and
    its own values renamed ``seqboltz_unrolled_{i}/{name}``; the last state output becomes the
    loop's output. The copy runs ``noise`` of ``k`` rows only.

    Raises:
        ValueError: ``k < 1``, or ``proto`` has no such loop.
    """
    from onnx import helper, numpy_helper

    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    out = copy.deepcopy(proto)
    loop = find_gibbs_loop(out)
    if loop is None:
        raise ValueError("the graph has no Gibbs-step Loop to unroll")
    (body,) = (a.g for a in loop.attribute if a.name == "body")
    index_in, cond_in, state_in = (i.name for i in body.input)
    cond_out, state_out = (o.name for o in body.output)
    local = {index_in, cond_in, state_in} | {o for n in body.node for o in n.output}
    nodes: list[Any] = []
    state = loop.input[2]
    for i in range(k):
        prefix = f"seqboltz_unrolled_{i}/"
        names = {n: prefix + n for n in local} | {state_in: state}
        index = numpy_helper.from_array(np.array(i, dtype=np.int64), names[index_in])
        nodes.append(helper.make_node("Constant", [], [names[index_in]], value=index))
        for node in body.node:
            if list(node.output) == [cond_out]:
                continue  # the loop's condition: nothing to carry when written out
            twin = copy.deepcopy(node)
            twin.input[:] = [names.get(x, x) if x else x for x in node.input]
            twin.output[:] = [names[x] for x in node.output]
            twin.name = prefix + node.name if node.name else ""
            nodes.append(twin)
        state = names[state_out]
    nodes.append(helper.make_node("Identity", [state], [loop.output[0]]))
    at = list(out.graph.node).index(loop)
    kept = [*out.graph.node[:at], *nodes, *out.graph.node[at + 1 :]]
    del out.graph.node[:]
    out.graph.node.extend(kept)
    return out
