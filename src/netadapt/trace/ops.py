"""What every operation of a traced network does to channels: the one table the tracer reads.

Each ``torch.fx`` node is classified into an :class:`Op`:

* ``conv`` — a convolution (``groups=1``) or ``linear`` layer: its filters start a new channel
  group that the search may shrink; it reads its input's channels through its weight.
* ``grouped`` — a depthwise or grouped convolution with as many outputs as inputs: output
  channel block ``i`` reads input block ``i``, so its channels are its input's (tied to it).
* ``channelwise`` — one tensor in, the same channels out, channel ``c`` computed from channel
  ``c`` only (BatchNorm, activations, pooling, dropout, flatten of a 1x1 map).  ``zero`` says
  whether a zeroed channel stays zero (ReLU, pooling: yes; BatchNorm, sigmoid: no), which tells
  the elastic forward where ordered dropout's masks must be applied again.
* ``add`` (and subtraction), ``mul``, ``div`` — elementwise arithmetic: a residual sum of two
  maps, squeeze-excitation's gate, or a map and a constant (then channelwise);
  ``cat`` — a concatenation; ``reduce`` — a mean or sum over dimensions; ``flatten`` — a
  reshape (channelwise when it only drops 1x1 spatial dimensions).
* ``shape`` — reads a size (no tensor out); ``input``, ``output``, ``constant``.
* ``unknown`` — anything else (a custom op, a reshape whose widths depend on the channels,
  channel shuffle, indexing): the channels it touches are fixed, with ``reason`` saying why.

Only ``torch``/``torch.nn`` objects are named here; torchvision's ``StochasticDepth`` and timm's
``DropPath`` are recognised by class name so that neither library is imported.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.fx.passes.shape_prop import TensorMetadata
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = ["LEAF_CLASS_NAMES", "Op", "classify", "is_leaf"]


@dataclass(frozen=True)
class Op:
    """How one node treats channels (see the module docstring)."""

    kind: str
    zero: bool = True  # channelwise: a zero channel stays zero
    reason: str = ""  # unknown: why its channels are fixed


# Modules in torch.nn whose channel c depends on channel c only.
_ZERO_MODULES: tuple[type[nn.Module], ...] = (
    nn.ReLU, nn.ReLU6, nn.Hardswish, nn.SiLU, nn.GELU, nn.LeakyReLU, nn.ELU, nn.CELU, nn.SELU, nn.Mish,
    nn.Tanh, nn.Hardtanh, nn.Softsign, nn.Tanhshrink, nn.Hardshrink, nn.Softshrink, nn.PReLU, nn.Identity,
    nn.Dropout, nn.Dropout2d, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d,
    nn.Upsample, nn.UpsamplingNearest2d, nn.UpsamplingBilinear2d, nn.ZeroPad2d, nn.ReflectionPad2d,
    nn.ReplicationPad2d,
)  # fmt: skip
_DIRTY_MODULES: tuple[type[nn.Module], ...] = (_BatchNorm, nn.Sigmoid, nn.Hardsigmoid, nn.Softplus, nn.InstanceNorm2d)

#: Library modules traced as leaves and treated as channelwise, zero-preserving (a per-image
#: scale): torchvision's stochastic depth and timm's drop path.  Tracing into them would bake
#: their ``self.training`` test into the graph.
LEAF_CLASS_NAMES = frozenset({"StochasticDepth", "DropPath"})

_ZERO_FUNCTIONS = {
    F.relu, F.relu6, torch.relu, F.hardswish, F.silu, F.gelu, F.leaky_relu, F.elu, F.mish, torch.tanh,
    F.hardtanh, F.dropout, F.dropout2d, F.max_pool2d, F.avg_pool2d, F.adaptive_avg_pool2d,
    F.adaptive_max_pool2d, F.interpolate,
}  # fmt: skip
_DIRTY_FUNCTIONS = {torch.sigmoid, F.sigmoid, F.hardsigmoid, F.softplus}
_ZERO_FUNCTION_NAMES = frozenset({"stochastic_depth", "drop_path"})  # torchvision, timm (wrapped)
_ZERO_METHODS = frozenset({"relu", "relu_", "tanh", "tanh_", "contiguous", "clone", "float", "detach", "to"})
_DIRTY_METHODS = frozenset({"sigmoid", "sigmoid_"})
_ADD = {operator.add, operator.iadd, torch.add, operator.sub, operator.isub, torch.sub}
_ADD_METHODS = frozenset({"add", "add_", "sub", "sub_"})
_MUL = {operator.mul, operator.imul, torch.mul}
_MUL_METHODS = frozenset({"mul", "mul_"})
_DIV = {operator.truediv, operator.itruediv, torch.div}
_CAT = {torch.cat, torch.concat, torch.concatenate}
_REDUCE_METHODS = frozenset({"mean", "amax", "sum"})
_RESHAPE_METHODS = frozenset({"flatten", "view", "reshape"})


def is_leaf(module: nn.Module) -> bool:
    """Whether the tracer keeps ``module`` as one call (its weights sliced as a whole).

    torch's own modules, and subclasses of convolutions, linear and BatchNorm layers from other
    libraries (timm's ``BatchNormAct2d``, ``Conv2dSame``), and the stochastic-depth modules."""
    if isinstance(module, nn.Sequential):
        return False
    if module.__module__.startswith("torch.nn"):
        return True
    return isinstance(module, (nn.Conv2d, nn.Linear, _BatchNorm)) or type(module).__name__ in LEAF_CLASS_NAMES


def _name(target: object) -> str:
    return getattr(target, "__name__", str(target))


def _module_op(module: nn.Module) -> Op:
    if isinstance(module, nn.Conv2d):
        if module.groups == 1:
            return Op("conv")
        if module.in_channels == module.out_channels:
            return Op("grouped")
        return Op(
            "unknown",
            reason=f"grouped convolution ({module.groups} groups) with {module.in_channels} inputs and {module.out_channels} outputs",
        )
    if isinstance(module, nn.Linear):
        return Op("conv")
    if isinstance(module, nn.Flatten):
        return Op("flatten") if module.start_dim == 1 else Op("unknown", reason="flatten from a dimension other than 1")
    if isinstance(module, _DIRTY_MODULES):
        return Op("channelwise", zero=False)
    if isinstance(module, _ZERO_MODULES) or type(module).__name__ in LEAF_CLASS_NAMES:
        return Op("channelwise")
    where = "module" if type(module).__module__.startswith("torch.nn") else "custom module"
    return Op("unknown", reason=f"{where} {type(module).__name__}")


def classify(node: fx.Node, modules: dict[str, nn.Module]) -> Op:
    """The :class:`Op` of one node of a traced graph (shapes from ``ShapeProp`` in ``node.meta``)."""
    if node.op == "placeholder":
        return Op("input")
    if node.op == "output":
        return Op("output")
    if node.op == "get_attr":
        return Op("constant")
    if not isinstance(node.meta.get("tensor_meta"), TensorMetadata):
        return _non_tensor_op(node)
    if node.op == "call_module":
        return _module_op(modules[node.target])
    target = node.target
    if node.op == "call_method":
        if target in _ZERO_METHODS:
            return Op("channelwise")
        if target in _DIRTY_METHODS:
            return Op("channelwise", zero=False)
        if target in _REDUCE_METHODS:
            return Op("reduce")
        if target in _RESHAPE_METHODS:
            return Op("flatten")
        if target in _ADD_METHODS:
            return Op("add")
        if target in _MUL_METHODS:
            return Op("mul")
        if target in ("clamp", "clamp_"):
            return _clamp(node)
        return Op("unknown", reason=f"tensor method {target}")
    if target in _ZERO_FUNCTIONS or _name(target) in _ZERO_FUNCTION_NAMES:
        return Op("channelwise")
    if target in _DIRTY_FUNCTIONS:
        return Op("channelwise", zero=False)
    if target in _ADD:
        return Op("add")
    if target in _MUL:
        return Op("mul")
    if target in _DIV:
        return Op("div")
    if target in _CAT:
        return Op("cat")
    if target is torch.flatten:
        return Op("flatten")
    if target in (torch.clamp, torch.clip):
        return _clamp(node)
    if target is operator.getitem:
        if _keeps_everything(node):
            return Op("channelwise")  # x[:, :C] of a C-channel map (GhostNet's trim when nothing is trimmed)
        return Op("unknown", reason="indexing or splitting a feature map")
    return Op("unknown", reason=f"function {_name(target)}")


_SHAPE_METHODS = frozenset({"size", "dim"})
_SHAPE_ATTRIBUTES = frozenset({"shape", "ndim", "dtype", "device", "is_cuda"})


def _non_tensor_op(node: fx.Node) -> Op:
    """A node whose output is not one tensor: a size read (``shape``), or an op returning several
    tensors (``torch.split``), which is ``unknown``."""
    if node.op == "call_method" and node.target in _SHAPE_METHODS:
        return Op("shape")
    if node.op == "call_function":
        if node.target is getattr and len(node.args) > 1 and node.args[1] in _SHAPE_ATTRIBUTES:
            return Op("shape")
        inputs = node.all_input_nodes
        if all(not isinstance(a.meta.get("tensor_meta"), TensorMetadata) for a in inputs):
            return Op("shape")  # arithmetic on sizes, indexing a size tuple
    if node.op == "call_module":
        return Op("unknown", reason=f"custom module {type(node.graph.owning_module.get_submodule(node.target)).__name__}")
    return Op("unknown", reason=f"{node.op.replace('call_', '')} {_name(node.target)} returning several tensors")


def _keeps_everything(node: fx.Node) -> bool:
    """Whether ``x[index]`` is ``x`` itself: unit-step slices from 0 and an unchanged shape."""
    x, index = node.args[0], node.args[1]
    if not isinstance(x, fx.Node) or not isinstance(x.meta.get("tensor_meta"), TensorMetadata):
        return False
    index = index if isinstance(index, tuple) else (index,)
    slices = all((isinstance(i, slice) and i.start in (None, 0) and i.step in (None, 1)) or i is Ellipsis for i in index)
    return slices and tuple(x.meta["tensor_meta"].shape) == tuple(node.meta["tensor_meta"].shape)


def _clamp(node: fx.Node) -> Op:
    low = node.kwargs.get("min", node.args[1] if len(node.args) > 1 else None)
    high = node.kwargs.get("max", node.args[2] if len(node.args) > 2 else None)
    zero = (low is None or (isinstance(low, (int, float)) and low <= 0)) and (
        high is None or (isinstance(high, (int, float)) and high >= 0)
    )
    return Op("channelwise", zero=zero)
