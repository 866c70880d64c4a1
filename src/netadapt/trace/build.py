"""Tracing options, the ``torch.fx`` trace itself, and the search space of a traced network."""

from __future__ import annotations

import io
import math
from contextlib import redirect_stderr
from dataclasses import dataclass

import torch
from torch import Tensor, fx, nn
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.fx.passes.shape_prop import ShapeProp
from torch.utils.flop_counter import FlopCounterMode

from netadapt.arch.space import LayerSpec, SearchSpace, kernel_choices, width_choices
from netadapt.config import check_fields
from netadapt.errors import NetAdaptError
from netadapt.trace.graph import Group, TracePlan
from netadapt.trace.ops import is_leaf

__all__ = ["TraceOptions", "build_space", "trace_module"]

REMOVAL_MODES = ("block", "none")


@dataclass(frozen=True)
class TraceOptions:
    """Search-space options of a traced super-network (a subset of the zoo's ``BuildOptions``).

    Channel-level bypass is not offered: a traced network searches depth by removing residual
    blocks (``removal="block"``), and widths down to ``min_width_fraction`` (never 0 outside a
    removable block or a squeeze-excitation).  ``superkernel`` lets every searchable convolution
    whose padding is ``k // 2`` choose odd kernel sizes from 3 to its own (5x5 and 7x7 ones).
    """

    num_widths: int = 9  # appendix A: nine uniformly spaced widths
    width_divisor: int = 1
    min_width_fraction: float = 0.0
    removal: str = "block"
    superkernel: bool = False  # the user's kernels stay as trained unless asked

    def __post_init__(self) -> None:
        check_fields(self, "option ")
        if self.removal not in REMOVAL_MODES:
            raise NetAdaptError(f"removal must be one of {', '.join(REMOVAL_MODES)} for a traced network, got {self.removal!r}")
        if not 0.0 <= self.min_width_fraction <= 1.0:
            raise NetAdaptError(f"min_width_fraction must be in [0, 1], got {self.min_width_fraction}")
        if self.num_widths < 2 or self.width_divisor < 1:
            raise NetAdaptError("num_widths must be at least 2 and width_divisor at least 1")

    @classmethod
    def from_options(cls, options: dict) -> TraceOptions:
        """Options by name; the zoo's ``bypass="none"`` is accepted (it is what tracing does)."""
        options = dict(options)
        bypass = options.pop("bypass", "none")
        if bypass != "none":
            raise NetAdaptError(
                "channel-level bypass is not offered for traced networks (depth is searched by removing "
                "residual blocks); leave bypass unset or 'none'"
            )
        known = set(cls.__dataclass_fields__)
        unknown = set(options) - known
        if unknown:
            raise NetAdaptError(f"unknown option(s) {sorted(unknown)} for a traced network; known: {sorted(known)}")
        return cls(**options)


class _Tracer(fx.Tracer):
    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return is_leaf(m)


def trace_module(model: nn.Module, example_input: Tensor) -> tuple[fx.GraphModule, int]:
    """``model`` as a ``torch.fx`` graph whose nodes carry their shapes for one image of
    ``example_input``, and the MACs ``torch.utils.flop_counter`` counts for that image.

    Shapes are propagated with fake tensors (no arithmetic: a ResNet-50 at 224x224 in about
    0.3 s instead of a real forward pass); a model whose ops cannot run on fake tensors gets one
    real forward pass in eval mode without gradients (BatchNorm statistics untouched).
    """
    tracer = _Tracer()
    try:
        graph = tracer.trace(model)
    except Exception as exc:  # torch.fx raises many kinds on data-dependent control flow
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise NetAdaptError(
            f"torch.fx cannot trace {type(model).__name__}: {first}. Make the forward free of "
            "Python control flow on tensor values, or wrap the offending part in a module of its own"
        ) from None
    gm = fx.GraphModule(tracer.root, graph, type(model).__name__)
    placeholders = [n for n in graph.nodes if n.op == "placeholder"]
    if len(placeholders) != 1:
        raise NetAdaptError(
            f"{type(model).__name__}.forward takes {len(placeholders)} inputs; a traced network takes one image batch"
        )
    example = example_input[:1]
    was_training = gm.training
    gm.eval()
    # ShapeProp prints the traceback of a failing node itself; the error below says it in a line.
    try:
        try:
            # The real weights enter the fake mode as they are used: no copy of the model (made
            # before the mode is entered, ShapeProp does not look for one and copy the weights).
            prop = ShapeProp(gm)
            mode = FakeTensorMode(allow_non_fake_inputs=True)
            with FlopCounterMode(display=False) as counter, mode, torch.no_grad(), redirect_stderr(io.StringIO()):
                prop.propagate(mode.from_tensor(example))
        except Exception:  # an op without a fake-tensor kernel: measure on real tensors
            try:
                with FlopCounterMode(display=False) as counter, torch.no_grad(), redirect_stderr(io.StringIO()):
                    ShapeProp(gm).propagate(example)
            except RuntimeError as exc:  # the model refuses the example (channels, size)
                root: BaseException = exc
                while root.__cause__ is not None:
                    root = root.__cause__
                first = str(root).strip().splitlines()[0] if str(root).strip() else type(root).__name__
                shape = tuple(example_input.shape)
                raise NetAdaptError(f"{type(model).__name__} cannot run on an input of shape {shape}: {first}") from None
    finally:
        gm.train(was_training)
    _reshape_views(gm)
    return gm, counter.get_total_flops() // 2


def _reshape_views(gm: fx.GraphModule) -> None:
    """Every ``tensor.view(shape)`` of the model's code as ``tensor.reshape(shape)``: the same
    values (a view wherever one is possible), but also on tensors whose strides forbid a view --
    a flatten written ``x.view(x.size(0), -1)`` after a convolution fails on a channels-last
    tensor, the memory format compact networks train in on a CPU and the search's samples run
    in.  Left as views (read from the shapes just propagated): ``view(dtype)``, a reinterpretation
    rather than a shape, and a view written through in place (``y = x.view(...); y.mul_(2)``),
    where a copy would lose the write."""
    modules = dict(gm.named_modules())
    changed = False
    for node in gm.graph.nodes:
        if node.op != "call_method" or node.target != "view" or node.kwargs:
            continue
        if all(_shape_argument(a) for a in node.args[1:]) and not any(_in_place(u, modules) for u in node.users):
            node.target = "reshape"
            changed = True
    if changed:
        gm.recompile()


def _shape_argument(value: object) -> bool:
    if isinstance(value, fx.Node):  # its value's type, recorded by the shape propagation
        kind = value.meta.get("type")
        return isinstance(kind, type) and issubclass(kind, (int, tuple)) and not issubclass(kind, bool)
    if isinstance(value, (tuple, list)):
        return all(_shape_argument(v) for v in value)
    return isinstance(value, int) and not isinstance(value, bool)


def _in_place(user: fx.Node, modules: dict[str, nn.Module]) -> bool:
    """Whether ``user`` may write into its input: an in-place method or function (``mul_``,
    ``+=``) or a module built with ``inplace=True``."""
    if user.op == "call_module":
        return bool(getattr(modules.get(str(user.target)), "inplace", False))
    name = user.target if isinstance(user.target, str) else getattr(user.target, "__name__", "")
    return (name.endswith("_") and not name.startswith("__")) or name.strip("_") in _AUGMENTED


#: Augmented assignments as torch.fx records them (``operator.iadd`` …, ``Tensor.__iadd__`` …).
_AUGMENTED = frozenset({"iadd", "isub", "imul", "itruediv", "ifloordiv", "imod", "ipow", "iand", "ior", "ixor"})


def _widths(group: Group, options: TraceOptions) -> tuple[int, ...]:
    zero = group.block is not None or (group.se and options.min_width_fraction == 0)
    divisor = math.lcm(options.width_divisor, group.divisor)
    widths = width_choices(group.size, options.num_widths, divisor, allow_zero=zero)
    floor = options.min_width_fraction
    if floor > 0:
        widths = tuple(w for w in widths if w >= floor * group.size or (zero and w == 0)) or (group.size,)
    return widths


def build_space(plan: TracePlan, model: str, options: TraceOptions) -> tuple[SearchSpace, dict[str, int], dict[int, int]]:
    """The search space of a traced network.

    One layer per searchable convolution, in graph order: the producers of free groups (kind
    ``conv``, or ``se`` for a squeeze-excitation's hidden width) and the depthwise or grouped
    convolutions reading a free group (kind ``depthwise``, or ``conv`` when grouped), tied to it.
    Returns (space, layer index of each convolution node, first layer index of each free group).
    """
    rows: list[tuple[str, str, int, Group]] = []  # (node, kind, kernel, group)
    for conv in plan.convs:
        if conv.kind in ("conv", "linear"):
            group = plan.groups[conv.out_layout[0]]
            if group.kind == "free" and conv.node in group.producers:
                rows.append((conv.node, "se" if group.se else "conv", conv.kernel, group))
        elif conv.kind == "grouped" and len(conv.in_layout) == 1 and plan.groups[conv.in_layout[0]].kind == "free":
            rows.append((conv.node, "depthwise" if conv.per_group == 1 else "conv", conv.kernel, plan.groups[conv.in_layout[0]]))
    counts: dict[int, int] = {}
    for _, _, _, group in rows:
        counts[group.id] = counts.get(group.id, 0) + 1
    ties: dict[int, int] = {}
    convs = {c.node: c for c in plan.convs}
    layers, layer_of, group_layer = [], {}, {}
    for node, kind, kernel, group in rows:
        tie = None
        if counts[group.id] > 1:
            tie = ties.setdefault(group.id, len(ties))
        conv = convs[node]
        kernels = kernel_choices(kernel) if options.superkernel and conv.padding_ok and kernel > 3 else (kernel,)
        layer_of[node] = len(layers)
        group_layer.setdefault(group.id, len(layers))
        layers.append(LayerSpec(conv.target, kind, group.size, kernel, _widths(group, options), kernels, 0, tie, group.block))
    return SearchSpace(model, tuple(layers)), layer_of, group_layer
