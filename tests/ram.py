"""Peak int8 activation RAM measured on a built model, independently of the layer kinds'
own counts: torch.fx traces the model, ShapeProp gives every tensor's size, and a
liveness pass over the graph finds, at each step that makes a new tensor (a conv, a
linear layer, a pool, a mean), the bytes of every tensor still needed then or later
plus its output, at 1 byte per element. Everything else writes over a tensor it is
given (BatchNorm folded, ReLU and sigmoid fused, dropout and flatten views, a residual
add or the squeeze-excite scaling in place), so it makes no new tensor: a skip
connection's input stays alive until the add that reads it."""
from __future__ import annotations

import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

STEP_MODULES = (nn.Conv2d, nn.Linear, nn.MaxPool2d, nn.AvgPool2d)
STEP_CALLS = {"mean", "conv2d", "linear", "max_pool2d", "avg_pool2d"}


def traced_peak(model: nn.Module, shape: tuple[int, int, int]) -> int:
    """The largest sum of live bytes at any step of one image's inference through ``model``."""
    gm = fx.symbolic_trace(model.eval())
    ShapeProp(gm).propagate(torch.zeros(1, *shape))
    nodes = list(gm.graph.nodes)
    pos = {n: i for i, n in enumerate(nodes)}

    def size(n: fx.Node) -> int:
        meta = n.meta.get("tensor_meta")
        return meta.shape.numel() if meta is not None and hasattr(meta, "shape") else 0

    def makes_tensor(n: fx.Node) -> bool:
        if n.op == "call_module":
            return isinstance(gm.get_submodule(n.target), STEP_MODULES)
        name = n.target if isinstance(n.target, str) else getattr(n.target, "__name__", "")
        return n.op in ("call_method", "call_function") and name in STEP_CALLS

    buffer: dict[fx.Node, fx.Node] = {}  # each node -> the node whose tensor it is
    for n in nodes:
        inputs = [a for a in n.all_input_nodes if size(a)]
        buffer[n] = n if n.op == "placeholder" or makes_tensor(n) or not inputs else buffer[max(inputs, key=size)]
    last_use: dict[fx.Node, int] = {}
    for n in nodes:
        for a in n.all_input_nodes:
            last_use[buffer[a]] = max(last_use.get(buffer[a], 0), pos[n])
    tensors = set(buffer.values())
    peak = 0
    for n in nodes:
        if buffer[n] is n and n.op != "placeholder":
            alive = sum(size(b) for b in tensors if pos[b] < pos[n] and last_use.get(b, -1) >= pos[n])
            peak = max(peak, alive + size(n))
    return peak
