"""The super-network of a traced model: the user's graph run with ordered dropout's masks.

:class:`GraphSuperNet` keeps the traced ``torch.fx`` module (the user's layers and trained
weights, untouched) and a second forward pass generated from the same graph with a mask
inserted wherever a channel group's dropped channels could be non-zero and are about to be
mixed (before a convolution, a sum, a concatenation): per image, group ``g`` keeps its first
``filters[b, layer(g)]`` channels (paper §2.3).  Costs are a precomputed table over the groups'
widths; extraction (:mod:`netadapt.trace.extract`) slices the same layers through
:mod:`netadapt.model.slicing`.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from functools import reduce

import torch
import torch.nn.functional as F
from torch import Tensor, fx, nn

from netadapt.arch.space import Architecture, SearchSpace
from netadapt.errors import NetAdaptError
from netadapt.model.elastic import ElasticNet
from netadapt.model.layers import Choice, LayerCost
from netadapt.model.slicing import crop_kernel, layout_mask
from netadapt.trace.build import TraceOptions
from netadapt.trace.graph import TracePlan

__all__ = ["GraphSuperNet", "mask_channels", "se_gate", "superkernel_conv"]


# -- functions the masked graph calls ----------------------------------------------------------
def mask_channels(x: Tensor, widths: tuple[Tensor | None, ...], sizes: tuple[int, ...]) -> Tensor:
    """Ordered dropout: zero every image's channels beyond its width in each part of the layout."""
    return x * layout_mask(widths, sizes, x.dim()).to(x.dtype)


def se_gate(x: Tensor, gate: Tensor, hidden: Tensor) -> Tensor:
    """``x * gate``, or ``x`` itself for the images whose squeeze-excitation keeps 0 hidden
    channels (the module is removed: its scale is 1, not the gate of an empty hidden layer)."""
    return torch.where((hidden > 0)[:, None, None, None], x * gate, x)


def superkernel_conv(x: Tensor, conv: nn.Conv2d, kernels: Tensor, options: tuple[int, ...]) -> Tensor:
    """``conv`` with each image's kernel centre-cropped to its own size (paper §2.1)."""

    def run(inputs: Tensor, k: int) -> Tensor:
        return F.conv2d(inputs, crop_kernel(conv.weight, k), conv.bias, conv.stride, k // 2, 1, conv.groups)

    if torch.compiler.is_compiling():  # one static graph: every size over the batch, each image picks
        y = run(x, options[0])
        for k in options[1:]:
            y = torch.where((kernels == k)[:, None, None, None], run(x, k), y)
        return y
    values = torch.unique(kernels).tolist()
    if len(values) == 1:
        return run(x, int(values[0]))
    groups = [torch.nonzero(kernels == k).flatten() for k in values]
    parts = [run(x[idx], int(k)) for idx, k in zip(groups, values, strict=True)]
    return torch.cat(parts)[torch.argsort(torch.cat(groups))]


# -- the masked graph ----------------------------------------------------------------------------
_NEEDS_CLEAN = frozenset({"conv", "add", "cat", "unknown", "output"})


def masked_graph(
    gm: fx.GraphModule, plan: TracePlan, space: SearchSpace, layer_of: dict[str, int], group_layer: dict[int, int]
) -> fx.Graph:
    """The graph of ``gm`` taking ``(x, filters, kernels)`` with ordered dropout's masks inserted.

    A node is *dirty* when the channels its images drop may hold non-zero values (after a
    convolution, BatchNorm, a sigmoid); a zero-preserving channelwise op keeps a clean map
    clean.  A dirty map is masked once, just before something mixes channels or sums maps.
    """
    builder = _MaskedGraph(gm, plan, space, layer_of, group_layer)
    for node in gm.graph.nodes:
        builder.add(node)
    builder.graph.lint()
    return builder.graph


class _MaskedGraph:
    """The state of :func:`masked_graph` while it copies ``gm``'s nodes one at a time: the new
    graph, each old node's new node (``env``), which maps are dirty, each group's widths."""

    def __init__(
        self, gm: fx.GraphModule, plan: TracePlan, space: SearchSpace, layer_of: dict[str, int], group_layer: dict[int, int]
    ) -> None:
        self.gm, self.plan, self.space, self.layer_of, self.group_layer = gm, plan, space, layer_of, group_layer
        self.graph = fx.Graph()
        self.env: dict[str, fx.Node] = {}
        self.dirty: dict[str, bool] = {}
        self.widths: dict[int, fx.Node | None] = {}
        self.filters: fx.Node | None = None
        self.kernels: fx.Node | None = None

    def width(self, g: int) -> fx.Node | None:
        """(B,) widths of group ``g`` per image; ``None`` for a group always at full width."""
        widths, graph = self.widths, self.graph
        if g not in widths:
            group = self.plan.groups[g]
            if group.kind == "free":
                widths[g] = graph.call_function(operator.getitem, (self.filters, (slice(None), self.group_layer[g])))
            elif group.kind == "max":
                parts = [self.width(o) for o in group.operands]
                widths[g] = (
                    None
                    if any(p is None for p in parts)
                    else reduce(lambda a, b: graph.call_function(torch.maximum, (a, b)), parts)
                )
            else:
                widths[g] = None
        return widths[g]

    def clean(self, name: str) -> fx.Node:
        env = self.env
        if not self.dirty.get(name):
            return env[name]
        info = self.plan.nodes[name]
        parts = tuple(self.width(g) for g in info.layout)
        self.dirty[name] = False
        if all(p is None for p in parts):
            return env[name]
        sizes = tuple(self.plan.groups[g].size for g in info.layout)
        env[name] = self.graph.call_function(mask_channels, (env[name], parts, sizes))
        return env[name]

    def elastic(self, name: str) -> bool:
        layout = self.plan.nodes[name].layout
        return layout is not None and any(self.plan.groups[g].kind != "fixed" for g in layout)

    def add(self, node: fx.Node) -> None:
        """Copy ``node``: mask its inputs where it needs them clean, then record whether it is dirty."""
        plan = self.plan
        if node.op == "placeholder":
            self.env[node.name] = self.graph.placeholder(node.name)
            self.filters, self.kernels = self.graph.placeholder("filters"), self.graph.placeholder("kernels")
            return
        maps = [a for a in node.all_input_nodes if plan.nodes[a.name].layout is not None]
        gate = plan.gates.get(node.name)
        self._clean_inputs(node, maps, gate)
        self.env[node.name] = self._copy(node, maps, gate)
        self.dirty[node.name] = self._is_dirty(node, maps)

    def _clean_inputs(self, node: fx.Node, maps: list[fx.Node], gate: tuple[int, frozenset[str]] | None) -> None:
        kind = self.plan.nodes[node.name].op.kind
        if kind in _NEEDS_CLEAN:
            for a in maps:
                self.clean(a.name)
        elif gate is not None:  # a removed gate passes its input on: that must be clean
            self.clean(next(a for a in maps if a.name not in gate[1]).name)
        elif kind == "mul" and len(maps) == 2 and all(self.dirty.get(a.name) for a in maps):
            self.clean(maps[0].name)  # a product is clean when one factor is

    def _copy(self, node: fx.Node, maps: list[fx.Node], gate: tuple[int, frozenset[str]] | None) -> fx.Node:
        """``node`` in the new graph: a squeeze-excitation gate, a superkernel convolution or a copy."""
        env, graph, space = self.env, self.graph, self.space
        if gate is not None:
            x = next(a for a in maps if a.name not in gate[1])
            scale = next(a for a in maps if a.name in gate[1])
            return graph.call_function(se_gate, (env[x.name], env[scale.name], self.width(gate[0])))
        if node.name in self.layer_of and len(space.layers[self.layer_of[node.name]].kernels) > 1:
            layer = self.layer_of[node.name]
            column = graph.call_function(operator.getitem, (self.kernels, (slice(None), layer)))
            args = (env[node.args[0].name], graph.get_attr(node.target), column, space.layers[layer].kernels)
            return graph.call_function(superkernel_conv, args)
        return graph.node_copy(node, lambda n: env[n.name])

    def _is_dirty(self, node: fx.Node, maps: list[fx.Node]) -> bool:
        info, dirty = self.plan.nodes[node.name], self.dirty
        kind = info.op.kind
        if not self.elastic(node.name):
            return False
        if kind == "conv":
            return True
        if kind == "grouped":
            return dirty.get(node.args[0].name, False) or self.gm.get_submodule(node.target).bias is not None
        if kind in ("channelwise", "reduce", "flatten"):
            return dirty.get(node.args[0].name, False) or not info.op.zero
        if kind == "mul":
            return node.name not in self.plan.gates and all(dirty.get(a.name, False) for a in maps)
        return False


def compile_graph(graph: fx.Graph) -> Callable[..., Tensor]:
    """A Python function ``forward(self, x, filters, kernels)`` running ``graph`` on the module
    passed as ``self`` (the traced model, so that both passes share one set of layers)."""
    code = graph.python_code(root_module="self")
    namespace = dict(code.globals)
    exec(compile(code.src, "<netadapt masked graph>", "exec"), namespace)  # what GraphModule.recompile does
    return namespace["forward"]


# -- the super-network -------------------------------------------------------------------------
class GraphSuperNet(ElasticNet):
    """A traced network used as a NetAdaptV2 super-network (see the module docstring).

    Call it like a zoo :class:`~netadapt.model.SuperNet`: ``net(x)`` runs the original model,
    ``net(x, arch)`` one sub-network, ``net(x, widths=W, kernels=K)`` one per image.
    """

    _made = "traced"  # (for the input-size error)

    def __init__(
        self,
        model: fx.GraphModule,
        plan: TracePlan,
        space: SearchSpace,
        layer_of: dict[str, int],
        group_layer: dict[int, int],
        *,
        input_shape: tuple[int, int, int],
        options: TraceOptions,
        source: str | None,
        build: dict,
        other_macs: int,
        other_params: int,
    ) -> None:
        super().__init__()
        self.model = model
        self.plan = plan
        self.space = space
        self.layer_of = layer_of
        self.group_layer = group_layer
        self.options = options
        self.source = source
        self.in_channels, height, width = input_shape
        if height != width:
            raise NetAdaptError(f"a traced network takes square inputs; the example is {height}x{width}")
        self.input_size = height
        self._build = dict(build)
        out = next(n for n in model.graph.nodes if n.op == "output").all_input_nodes
        out_shape = plan.nodes[out[0].name].shape if len(out) == 1 else ()
        self.task = "classification" if len(out_shape) == 2 else "features"
        self._num_classes = out_shape[1] if len(out_shape) == 2 else 0
        self.__dict__["_masked"] = compile_graph(masked_graph(model, plan, space, layer_of, group_layer))
        self._tables = _CostTables(plan, space, layer_of, group_layer, model, other_macs, other_params)
        self.register_buffer(
            "_max_filters", torch.tensor([s.max_filters for s in space.layers], dtype=torch.long), persistent=False
        )
        self.register_buffer(
            "_full_kernels", torch.tensor([s.max_kernel for s in space.layers], dtype=torch.long), persistent=False
        )

    @property
    def name(self) -> str:
        return self.space.model

    @property
    def num_classes(self) -> int:
        return self._num_classes

    def build_config(self) -> dict:
        """Everything needed to rebuild this super-network (stored in checkpoints); needs a source."""
        if self.source is None:
            raise NetAdaptError(
                "this super-network was traced from a model object; pass source='torchvision:NAME', 'timm:NAME' "
                "or 'module:FILE.py:FACTORY' to supernet_from_module so that files can rebuild it"
            )
        return dict(self._build)

    # -- forward passes (ElasticNet.forward checks and dispatches) ---------------------------
    def _forward_plain(self, x: Tensor) -> Tensor:
        return self.model(x)

    def _forward_choice(self, x: Tensor, choice: Choice) -> Tensor:
        # Groups normalized apart: every group runs as its own pass (the traced graph's BatchNorm
        # sees only its images).
        if choice.groups is None or len(choice.groups) == 1 or not self.training:
            return self._masked(self.model, x, choice.filters, choice.kernels)
        sizes = list(choice.groups)
        parts = zip(x.split(sizes), choice.filters.split(sizes), choice.kernels.split(sizes), strict=True)
        return torch.cat([self._masked(self.model, *part) for part in parts])

    # -- costs -----------------------------------------------------------------------------
    def group_widths(self, arch: Architecture) -> list[int]:
        """The width of every channel group (indexed by group id order of ``self.plan``) in ``arch``."""
        return self._tables.widths(arch.filters)

    def macs(self, arch: Architecture | None = None, *, validate: bool = True) -> int:
        """MACs of ``arch`` (default: the full network) for one image: the fast path of the search."""
        arch = self.space.full() if arch is None else (self.space.validate(arch) if validate else arch)
        return self._tables.macs(arch)

    def costs(self, arch: Architecture | None = None, *, validate: bool = True) -> list[LayerCost]:
        """Per-layer shapes, MACs and parameters of ``arch`` (default: the full network)."""
        arch = self.space.full() if arch is None else (self.space.validate(arch) if validate else arch)
        return self._tables.costs(arch)

    def describe(self, arch: Architecture | None = None) -> dict:
        """MACs, parameters and one row per searchable layer (:func:`netadapt.trace.report.describe_traced`)."""
        from netadapt.trace.report import describe_traced  # the report module imports this one

        return describe_traced(self, arch)

    def extract(self, arch: Architecture) -> fx.GraphModule:
        """The compact network of ``arch``: a ``torch.fx`` module with smaller layers holding
        this super-network's sliced weights (see :mod:`netadapt.trace.extract`)."""
        from netadapt.trace.extract import extract_graph

        self.space.validate(arch)
        return extract_graph(self, arch)

    def implant_(self, compact: fx.GraphModule, arch: Architecture) -> GraphSuperNet:
        """Write the weights of ``compact`` (extracted at ``arch``) back into this super-network's
        slices: afterwards ``self(x, arch)`` equals ``compact(x)``."""
        from netadapt.trace.extract import implant_graph_

        self.space.validate(arch)
        implant_graph_(self, compact, arch)
        return self


class _CostTables:
    """MACs and parameters as a function of the groups' widths, precomputed once.

    Every convolution's MACs are ``out × in-per-filter × k² × pixels``; a layer with no input or
    no output channel, or inside a removed block or squeeze-excitation, costs nothing (it is not
    in the extracted network).  Operations the tracer does not model (fixed layers' other ops)
    are one constant measured with ``torch.utils.flop_counter``.
    """

    def __init__(
        self,
        plan: TracePlan,
        space: SearchSpace,
        layer_of: dict[str, int],
        group_layer: dict[int, int],
        gm: fx.GraphModule,
        other_macs: int,
        other_params: int,
    ) -> None:
        order = plan.order()
        self.index = {g: i for i, g in enumerate(order)}
        ix = self.index
        # (slot, kind, argument): 0 = a layer's filters, 1 = a constant, 2 = max of slots
        self.program = []
        for g in order:
            group = plan.groups[g]
            if group.kind == "free":
                self.program.append((ix[g], 0, group_layer[g]))
            elif group.kind == "max":
                self.program.append((ix[g], 2, tuple(ix[o] for o in group.operands)))
            else:
                self.program.append((ix[g], 1, group.size))
        block_of: dict[str, int] = {}
        for block in plan.blocks:
            for n in block.nodes:
                block_of.setdefault(n, block.id)
        gate_of = {n: ix[g] for g, names in plan.gates.values() for n in names}
        self.blocks = [tuple(ix[g] for g in b.groups if not plan.groups[g].se) for b in plan.blocks]
        # (name, kind, in slots, out slots, inputs per filter (0: all), kernel area, kernel layer,
        #  stride, input size, output pixels, bias, block, gate)
        self.convs = []
        for conv in plan.convs:
            kind = {"grouped": "depthwise" if conv.per_group == 1 else "conv", "fixed": "conv"}.get(conv.kind, conv.kind)
            layer = layer_of.get(conv.node)
            klayer = layer if layer is not None and len(space.layers[layer].kernels) > 1 else None
            self.convs.append(
                (conv.target, kind, tuple(ix[g] for g in conv.in_layout), tuple(ix[g] for g in conv.out_layout),
                 conv.per_group if conv.kind in ("grouped", "fixed") else 0, conv.area, klayer, conv.stride,
                 conv.in_size, conv.out_pixels, conv.bias, block_of.get(conv.node), gate_of.get(conv.node))
            )  # fmt: skip
        self.norms = []  # (name, layout slots, parameters per channel, block, gate)
        modules = dict(gm.named_modules())
        conv_nodes = {c.node for c in plan.convs}
        for node in gm.graph.nodes:
            if node.op != "call_module" or node.name in conv_nodes or plan.nodes[node.name].layout is None:
                continue
            info = plan.nodes[node.name]
            size = sum(plan.groups[g].size for g in info.layout)
            per = sum(1 for p in modules[node.target].parameters() if p.dim() == 1 and p.shape[0] == size)
            if per and info.op.kind == "channelwise":
                self.norms.append(
                    (node.target, tuple(ix[g] for g in info.layout), per, block_of.get(node.name), gate_of.get(node.name))
                )
        self.other_macs = other_macs
        self.other_params = other_params

    def widths(self, filters: tuple[int, ...]) -> list[int]:
        w = [0] * len(self.program)
        for slot, kind, arg in self.program:
            if kind == 0:
                w[slot] = filters[arg]
            elif kind == 1:
                w[slot] = arg
            else:
                w[slot] = max(w[i] for i in arg)
        return w

    def _removed(self, w: list[int]) -> set[int]:
        return {i for i, groups in enumerate(self.blocks) if all(w[g] == 0 for g in groups)}

    def macs(self, arch: Architecture) -> int:
        w = self.widths(arch.filters)
        removed = self._removed(w) if self.blocks else ()
        kernels = arch.kernels
        total = self.other_macs
        for _, _, ins, outs, per, area, klayer, _, _, pixels, _, block, gate in self.convs:
            out = w[outs[0]] if len(outs) == 1 else sum(w[i] for i in outs)
            inp = w[ins[0]] if len(ins) == 1 else sum(w[i] for i in ins)
            if not out or not inp or block in removed or (gate is not None and not w[gate]):
                continue
            if klayer is not None:
                area = kernels[klayer] ** 2
            total += out * (per or inp) * area * pixels
        return total

    def costs(self, arch: Architecture) -> list[LayerCost]:
        w = self.widths(arch.filters)
        removed = self._removed(w)
        rows = []
        for name, kind, ins, outs, per, area, klayer, stride, size, pixels, bias, block, gate in self.convs:
            out = sum(w[i] for i in outs)
            inp = sum(w[i] for i in ins)
            k = arch.kernels[klayer] if klayer is not None else math.isqrt(area)
            if klayer is not None:
                area = k * k
            if not out or not inp or block in removed or (gate is not None and not w[gate]):
                rows.append(LayerCost(name, kind, inp, 0, k, stride, size, inp, 0, 0))
                continue
            weights = out * (per or inp) * area
            rows.append(LayerCost(name, kind, inp, out, k, stride, size, out, weights * pixels, weights + (out if bias else 0)))
        for name, slots, per, block, gate in self.norms:
            c = sum(w[i] for i in slots)
            gone = block in removed or (gate is not None and not w[gate])
            rows.append(LayerCost(name, "norm", c, c, 1, 1, 1, c, 0, 0 if gone else per * c))
        if self.other_macs or self.other_params:
            rows.append(LayerCost("other", "other", 0, 0, 1, 1, 1, 0, self.other_macs, self.other_params))
        return rows
