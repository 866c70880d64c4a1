"""The model zoo: every initial network as a list of block rows.

MobileNetV1/V2/V3 follow their papers and torchvision's conventions (so that the full networks
have exactly the MACs and parameters of ``../shared/REFERENCE.md`` and torchvision's weights load).
The paper's ImageNet initial networks are reconstructed from appendix A and Tables 8–9; see
``docs/design.md`` for the choices the paper leaves open.  Each network is registered with
:func:`~netadapt.model.registry.register_model`, as a user's own network would be.
"""

from __future__ import annotations

from dataclasses import replace

from netadapt.model.definitions import (
    Conv,
    Decoder,
    DepthwiseSeparable,
    Head,
    MBConv,
    NetworkDef,
    make_divisible,
    round_up_pow2,
)
from netadapt.model.registry import MODELS, get_definition, list_models, register_model

__all__ = ["MODELS", "get_definition", "list_models"]  # re-exported from netadapt.model.registry

# -- MobileNetV1 (Howard et al. 2017, Table 1) -----------------------------------------------------
_V1_ROWS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)) + ((512, 1),) * 5 + ((1024, 2), (1024, 1))


@register_model(description="MobileNetV1 (width_mult option), 224x224")
def mobilenet_v1(width_mult: float = 1.0, *, cifar: bool = False) -> NetworkDef:
    def c(v: int) -> int:
        return int(v * width_mult)

    rows = list(_V1_ROWS)
    if cifar:  # 32x32 input: stem at stride 1 (the usual CIFAR adaptation)
        blocks = (Conv(c(32), 3, 1),) + tuple(DepthwiseSeparable(c(f), s) for f, s in rows)
    else:
        blocks = (Conv(c(32), 3, 2),) + tuple(DepthwiseSeparable(c(f), s) for f, s in rows)
    return NetworkDef(
        name="mobilenet_v1_cifar" if cifar else "mobilenet_v1",
        blocks=blocks,
        head=Head(hidden=0, dropout=0.0),
        input_size=32 if cifar else 224,
        num_classes=10 if cifar else 1000,
        bypass_base=16,  # Table 10: T = 16 at 112x112 for the MobileNetV1 encoder of FastDepth
    )


# -- MobileNetV2 (torchvision) --------------------------------------------------------------------
_V2_SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


@register_model(description="MobileNetV2 (torchvision layout and weights), 224x224")
def mobilenet_v2(width_mult: float = 1.0, *, cifar: bool = False) -> NetworkDef:
    inp = make_divisible(32 * width_mult)
    blocks: list = [Conv(inp, 3, 1 if cifar else 2, "relu6")]
    for i, (t, c, n, s) in enumerate(_V2_SETTINGS):
        out = make_divisible(c * width_mult)
        for j in range(n):
            stride = s if j == 0 else 1
            if cifar and i == 1 and j == 0:
                stride = 1  # keep 32x32 through the first stage, as CIFAR MobileNetV2s do
            blocks.append(MBConv(3, inp * t, out, 0, "relu6", stride))
            inp = out
    blocks.append(Conv(make_divisible(1280 * max(1.0, width_mult)), 1, 1, "relu6"))
    return NetworkDef(
        name="mobilenet_v2_cifar" if cifar else "mobilenet_v2",
        blocks=tuple(blocks),
        head=Head(hidden=0, dropout=0.2),
        input_size=32 if cifar else 224,
        num_classes=10 if cifar else 1000,
        torchvision=None if cifar or width_mult != 1.0 else "mobilenet_v2",
    )


# -- MobileNetV3 (torchvision's table: kernel, expand, out, SE, activation, stride) ---------------
_V3_LARGE = (
    (3, 16, 16, False, "relu", 1),
    (3, 64, 24, False, "relu", 2),
    (3, 72, 24, False, "relu", 1),
    (5, 72, 40, True, "relu", 2),
    (5, 120, 40, True, "relu", 1),
    (5, 120, 40, True, "relu", 1),
    (3, 240, 80, False, "hswish", 2),
    (3, 200, 80, False, "hswish", 1),
    (3, 184, 80, False, "hswish", 1),
    (3, 184, 80, False, "hswish", 1),
    (3, 480, 112, True, "hswish", 1),
    (3, 672, 112, True, "hswish", 1),
    (5, 672, 160, True, "hswish", 2),
    (5, 960, 160, True, "hswish", 1),
    (5, 960, 160, True, "hswish", 1),
)
_V3_SMALL = (
    (3, 16, 16, True, "relu", 2),
    (3, 72, 24, False, "relu", 2),
    (3, 88, 24, False, "relu", 1),
    (5, 96, 40, True, "hswish", 2),
    (5, 240, 40, True, "hswish", 1),
    (5, 240, 40, True, "hswish", 1),
    (5, 120, 48, True, "hswish", 1),
    (5, 144, 48, True, "hswish", 1),
    (5, 288, 96, True, "hswish", 2),
    (5, 576, 96, True, "hswish", 1),
    (5, 576, 96, True, "hswish", 1),
)


def _mobilenet_v3(rows, last_hidden: int, name: str, width_mult: float, cifar: bool) -> NetworkDef:
    def c(v: int) -> int:
        return make_divisible(v * width_mult)

    blocks: list = [Conv(c(16), 3, 1 if cifar else 2, "hswish")]
    first_stride_2 = True
    for k, exp, out, se, act, stride in rows:
        if cifar and stride == 2 and first_stride_2:
            stride, first_stride_2 = 1, False
        expand = c(exp)
        blocks.append(MBConv(k, expand, c(out), make_divisible(expand // 4) if se else 0, act, stride))
    blocks.append(Conv(6 * c(rows[-1][2]), 1, 1, "hswish"))
    return NetworkDef(
        name=name + ("_cifar" if cifar else ""),
        blocks=tuple(blocks),
        head=Head(hidden=make_divisible(last_hidden * width_mult), act="hswish", dropout=0.2),
        input_size=32 if cifar else 224,
        num_classes=10 if cifar else 1000,
        bn_eps=0.001,
        bn_momentum=0.01,
        torchvision=None if cifar or width_mult != 1.0 else name,
    )


@register_model(description="MobileNetV3-Large (torchvision layout and weights), 224x224")
def mobilenet_v3_large(width_mult: float = 1.0, *, cifar: bool = False) -> NetworkDef:
    return _mobilenet_v3(_V3_LARGE, 1280, "mobilenet_v3_large", width_mult, cifar)


@register_model(description="MobileNetV3-Small (torchvision layout and weights), 224x224")
def mobilenet_v3_small(width_mult: float = 1.0, *, cifar: bool = False) -> NetworkDef:
    return _mobilenet_v3(_V3_SMALL, 1024, "mobilenet_v3_small", width_mult, cifar)


# -- The paper's ImageNet initial networks (appendix A.1, Tables 8 and 9) --------------------------
@register_model(description="paper's latency-guided ImageNet initial network (appendix A.1)")
def netadaptv2_latency() -> NetworkDef:
    """Latency-guided initial network: MobileNetV3-Large with widths rounded up to powers of 2,
    one extra block at 28x28 and one at 14x14, depthwise kernels +2 (appendix A.1).

    Choices the paper leaves open, taken so that Table 8 is an architecture of this network:
    squeeze-excitation in every block with ``expand / 2`` hidden units, and a 1x1 expansion layer
    in the first block (Table 8 lists Exp 8 there).  Extra blocks repeat the stage's last block.
    """
    rows = list(_V3_LARGE)
    rows.insert(6, rows[5])  # extra block at 28x28
    rows.insert(13, rows[12])  # extra block at 14x14
    blocks: list = [Conv(16, 3, 2, "hswish")]
    for i, (k, exp, out, _se, act, stride) in enumerate(rows):
        expand = round_up_pow2(exp)
        blocks.append(MBConv(k + 2, expand, round_up_pow2(out), expand // 2, act, stride, force_expand=i == 0))
    blocks.append(Conv(round_up_pow2(960), 1, 1, "hswish"))
    return NetworkDef(
        name="netadaptv2_latency",
        blocks=tuple(blocks),
        head=Head(hidden=round_up_pow2(1280), act="hswish", dropout=0.2),
        bn_eps=0.001,
        bn_momentum=0.01,
        bypass_base=8,  # Table 8: T = 8 at 112x112, doubling as resolution halves
    )


@register_model(description="paper's MAC-guided ImageNet initial network (appendix A.1)")
def netadaptv2_macs() -> NetworkDef:
    """MAC-guided initial network: the latency-guided one with widths ×1.25 (rounded to multiples
    of 8), one extra block at 7x7 and 11 width choices per layer (appendix A.1, Table 9)."""
    lat = netadaptv2_latency()
    blocks: list = []
    for b in lat.blocks:
        if isinstance(b, MBConv):
            b = replace(
                b,
                expand=make_divisible(b.expand * 1.25),
                filters=make_divisible(b.filters * 1.25),
                se=make_divisible(b.se * 1.25),
                force_expand=False,  # Table 9 lists no expansion layer in the first block
            )
        else:
            b = replace(b, filters=make_divisible(b.filters * 1.25))
        blocks.append(b)
    blocks.insert(-1, blocks[-2])  # extra block at 7x7
    assert lat.head is not None
    return replace(
        lat,
        name="netadaptv2_macs",
        blocks=tuple(blocks),
        head=replace(lat.head, hidden=make_divisible(lat.head.hidden * 1.25)),
        num_widths=11,
    )


# -- FastDepth (Wofk et al. 2019): MobileNetV1 encoder, NNConv5 decoder, additive skips ------------
@register_model(description="FastDepth: MobileNetV1 encoder, NNConv5 decoder, additive skips (depth)")
def fastdepth() -> NetworkDef:
    v1 = mobilenet_v1()
    # Encoder blocks 0..13 (block 0 is the stem).  Skips as in FastDepth's MobileNetSkipAdd:
    # decoder outputs at 28, 56 and 112 pixels get encoder blocks 5, 3 and 1 added.
    decoder = (Decoder(512), Decoder(256, skip=5), Decoder(128, skip=3), Decoder(64, skip=1), Decoder(32))
    return NetworkDef(
        name="fastdepth",
        blocks=v1.blocks + decoder + (Conv(1, 1, 1, "relu", searchable=False),),
        head=None,
        task="depth",
        num_classes=1,
        bypass_base=16,  # Table 10
    )


# -- 32x32 variants --------------------------------------------------------------------------------
@register_model(name="mobilenet_v1_cifar", description="MobileNetV1 for 32x32 inputs (stem stride 1)")
def _v1_cifar(width_mult: float = 1.0) -> NetworkDef:
    return mobilenet_v1(width_mult, cifar=True)


@register_model(name="mobilenet_v2_cifar", description="MobileNetV2 for 32x32 inputs (stem and first stage stride 1)")
def _v2_cifar(width_mult: float = 1.0) -> NetworkDef:
    return mobilenet_v2(width_mult, cifar=True)


@register_model(name="mobilenet_v3_large_cifar", description="MobileNetV3-Large for 32x32 inputs")
def _v3l_cifar(width_mult: float = 1.0) -> NetworkDef:
    return mobilenet_v3_large(width_mult, cifar=True)


@register_model(name="mobilenet_v3_small_cifar", description="MobileNetV3-Small for 32x32 inputs")
def _v3s_cifar(width_mult: float = 1.0) -> NetworkDef:
    return mobilenet_v3_small(width_mult, cifar=True)
