"""Why the paper's Tables 8 and 9 networks count 225 M and 314 M MACs and here 223.1 M and 311.3 M.

netadapt counts the multiply-accumulates of convolutions and fully connected layers (the
convention of ../shared/REFERENCE.md).  The networks also compute element-wise operations, which
other counters add: the squeeze-excitation's global pooling and its per-channel scaling, the
residual additions, the hard-swish and hard-sigmoid activations, the head's global pooling.  This
script counts each of them on the shipped architectures (a real forward pass of the extracted
network, one 224×224 image, one operation per element) and lists which sums of them land within
the paper's rounding (±0.5 M of 225 M and 314 M) for *both* networks.

    PYTHONPATH=src python benchmarks/paper_macs.py
"""

from __future__ import annotations

import itertools

import torch
from torch import nn

import netadapt
from netadapt.arch.files import load_architecture
from netadapt.model.blocks import ClassifierHead, InvertedResidual
from netadapt.model.layers import SqueezeExcite

PAPER = {"table8": ("netadaptv2_latency", 225e6), "table9": ("netadaptv2_macs", 314e6)}
KINDS = ("se_scale", "se_pool", "residual", "hswish", "hsigmoid", "head_pool")
TITLES = {
    "se_scale": "SE channel scaling (one multiply per element of the block's feature map)",
    "se_pool": "SE global average pooling (one add per element)",
    "residual": "residual additions (one add per added element)",
    "hswish": "hard-swish (one multiply per element)",
    "hsigmoid": "SE hard-sigmoid gate (one multiply per channel)",
    "head_pool": "the head's global average pooling (one add per element)",
}


def elementwise_ops(name: str) -> tuple[int, dict[str, int]]:
    """(netadapt's MACs, element-wise operations by kind) of shipped architecture ``name``."""
    model, _ = PAPER[name]
    net = netadapt.build_supernet(model)
    arch = load_architecture(name, net.space)
    compact = net.extract(arch).eval()
    counts = dict.fromkeys(KINDS, 0)

    def per_element(kind: str):
        def hook(module, inputs, output):
            counts[kind] += inputs[0][0].numel()

        return hook

    def se(module, inputs, output):
        counts["se_scale"] += inputs[0][0].numel()
        counts["se_pool"] += inputs[0][0].numel()

    def residual(module, inputs, output):
        if module.residual:  # the narrower of the two maps is added into the wider one
            x = inputs[0]
            counts["residual"] += min(x.shape[1], module.project.filters) * x.shape[2] * x.shape[3]

    for module in compact.modules():
        if isinstance(module, SqueezeExcite):
            module.register_forward_hook(se)
        elif isinstance(module, InvertedResidual):
            module.register_forward_hook(residual)
        elif isinstance(module, nn.Hardswish):
            module.register_forward_hook(per_element("hswish"))
        elif isinstance(module, nn.Hardsigmoid):
            module.register_forward_hook(per_element("hsigmoid"))
        elif isinstance(module, ClassifierHead):
            module.register_forward_hook(per_element("head_pool"))
    with torch.no_grad():
        compact(torch.zeros(1, 3, net.input_size, net.input_size))
    return netadapt.count_macs(net, arch), counts


def main() -> None:
    results = {name: elementwise_ops(name) for name in PAPER}
    print("| | Table 8 | Table 9 |")
    print("|---|---|---|")
    print(f"| paper | {PAPER['table8'][1] / 1e6:.0f} M | {PAPER['table9'][1] / 1e6:.0f} M |")
    print(f"| netadapt (convolutions + FC) | {results['table8'][0] / 1e6:.2f} M | {results['table9'][0] / 1e6:.2f} M |")
    for kind in KINDS:
        print(f"| + {TITLES[kind]} | {results['table8'][1][kind] / 1e6:.2f} M | {results['table9'][1][kind] / 1e6:.2f} M |")
    print()
    print("Sums within the paper's rounding (±0.5 M) for both tables:")
    for size in range(len(KINDS) + 1):
        for combo in itertools.combinations(KINDS, size):
            totals = {n: base + sum(ops[k] for k in combo) for n, (base, ops) in results.items()}
            if all(abs(totals[n] - PAPER[n][1]) <= 0.5e6 for n in PAPER):
                parts = " + ".join(combo) or "nothing"
                print(f"- {parts}: {totals['table8'] / 1e6:.2f} M and {totals['table9'] / 1e6:.2f} M")


if __name__ == "__main__":
    main()
