"""Tracing your own model (issue 18): how long tracing takes, how fast traced costs count, and
Torch-Pruning's dependency graph measured on the same models.

Goals: tracing a ResNet-50 (224x224) under 5 s; ``count_macs`` on a traced network at
≥ 5,000 architectures per second.  MAC counting is also timed on the zoo's hand-written
MobileNetV2 with the same search space (the baseline the traced network should match).

With ``torch-pruning`` installed, its ``DependencyGraph`` is built on the same models (the time,
its channel groups), our tie groups are checked to lie inside its groups (two independent
analyses agreeing), and pruning through a channel shuffle, ``torch.roll`` and ``flip`` is
and before a grouped convolution is compared with the network whose pruned channels are zeroed
(equal = correct).

    python benchmarks/bench_trace.py --verify 20
    python benchmarks/bench_trace.py --no-torch-pruning --archs 5000
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import random
import statistics
import time
import warnings
from pathlib import Path

import torch
from torch import nn

import netadapt
from netadapt.trace import supernet_from_module
from netadapt.trace.report import coverage

TRACE_GOAL_S = 5.0
COUNT_GOAL = 5_000
MODELS = ("resnet18", "resnet50", "mobilenet_v2", "mobilenet_v3_large", "efficientnet_b0", "regnet_x_400mf", "mnasnet1_0")
TIMM_MODELS = ("resnet26d", "regnety_002")


def _source(name: str) -> nn.Module:
    if name.startswith("timm:"):
        import timm

        return timm.create_model(name[5:], pretrained=False).eval()
    import torchvision

    return torchvision.models.get_model(name, weights=None).eval()


def wall(fn, repeat: int) -> float:
    """Median wall-clock seconds of ``fn`` over ``repeat`` runs (after one warm-up run)."""
    fn()
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def per_second(fn, archs) -> float:
    """Architectures per second of CPU time (process time: robust to other processes' load)."""
    for arch in archs[:100]:
        fn(arch)
    began = time.process_time()
    for arch in archs:
        fn(arch)
    return len(archs) / (time.process_time() - began)


def verify(names: tuple[str, ...], size: int, count: int) -> list[dict]:
    """Per model: searchable convolutions, the full architecture against the model, ``count``
    random architectures' extracted networks against the super-network, MACs against
    ``torch.utils.flop_counter`` (random BatchNorm statistics, eval mode)."""
    from netadapt.model.checks import randomize_norm_
    from netadapt.resources.counting import counted_macs

    rows = []
    for name in names:
        model = _source(name)
        randomize_norm_(model, torch.Generator().manual_seed(1))
        began = time.perf_counter()
        net = supernet_from_module(model, torch.zeros(1, 3, size, size)).eval()
        seconds = time.perf_counter() - began
        x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(2))
        rng = random.Random(0)
        archs = [net.space.smallest(), *(net.space.sample(rng) for _ in range(count - 1))]
        worst, macs_equal = 0.0, True
        with torch.no_grad():
            reference = model(x)
            full = float((net(x, net.space.full()) - reference).abs().max())
            for arch in archs:
                compact = net.extract(arch).eval()
                out = net(x, arch)
                worst = max(worst, float((compact(x) - out).abs().max() / out.abs().max()))
                macs_equal &= netadapt.count_macs(net, arch) == counted_macs(compact, input_size=size)
        searchable, total = coverage(net)
        rows.append(
            {
                "model": name,
                "trace_s": seconds,
                "searchable_convs": f"{searchable}/{total} ({100 * searchable / total:.0f}%)",
                "layers": len(net.space),
                "blocks": len(net.plan.blocks),
                "full_arch_max_error": full,
                "extraction_max_rel_error": worst,
                "macs_equal": f"{count}/{count}" if macs_equal else "NO",
            }
        )
    return rows


def bench_tracing(repeat: int) -> dict:
    model = _source("resnet50")
    x = torch.zeros(1, 3, 224, 224)
    return {"resnet50_224_trace_s": wall(lambda: supernet_from_module(model, x), repeat)}


def bench_counting(count: int, seed: int) -> dict:
    rows = {}
    rng = random.Random(seed)
    for name in ("resnet50", "mobilenet_v2"):
        net = supernet_from_module(_source(name), torch.zeros(1, 3, 224, 224))
        archs = [net.space.sample(rng) for _ in range(count)]
        rows[f"{name}_traced_macs_per_s"] = per_second(lambda a, net=net: netadapt.count_macs(net, a), archs)
    zoo = netadapt.build_supernet("mobilenet_v2", bypass="none")  # the same space as the traced one
    archs = [zoo.space.sample(rng) for _ in range(count)]
    rows["mobilenet_v2_zoo_macs_per_s"] = per_second(lambda a: netadapt.count_macs(zoo, a), archs)
    return rows


def _tp_groups(tp, model: nn.Module, x: torch.Tensor) -> tuple[float, list[set[str]]]:
    began = time.perf_counter()
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=x)
    groups = list(graph.get_all_groups(root_module_types=[nn.Conv2d, nn.Linear]))
    seconds = time.perf_counter() - began
    names = {m: n for n, m in model.named_modules()}
    sets = []
    for group in groups:
        members = set()
        for dep, _ in group:
            module = dep.target.module
            if isinstance(module, (nn.Conv2d, nn.Linear)) and dep.handler.__name__ == "prune_out_channels":
                members.add(names.get(module, "?"))
        sets.append(members)
    return seconds, sets


def bench_torch_pruning(size: int) -> list[dict]:
    import torch_pruning as tp

    rows = []
    for name in (*MODELS, *(f"timm:{m}" for m in TIMM_MODELS)):
        model = _source(name)
        x = torch.zeros(1, 3, size, size)
        began = time.perf_counter()
        net = supernet_from_module(model, x)
        ours_s = time.perf_counter() - began
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tp_s, tp_sets = _tp_groups(tp, copy.deepcopy(model), x)
        # Our tied layers (same width) must be one TP group: two analyses agreeing.
        ties: dict[int, set[str]] = {}
        for layer in net.space.layers:
            if layer.tie is not None and layer.kind != "se":
                ties.setdefault(layer.tie, set()).add(layer.name)
        inside = sum(1 for members in ties.values() if any(members <= s for s in tp_sets))
        searchable, total = coverage(net)
        rows.append(
            {
                "model": name,
                "ours_s": ours_s,
                "torch_pruning_s": tp_s,
                "our_layers": len(net.space),
                "our_width_variables": len(net.space.tie_groups()),
                "torch_pruning_groups": len(tp_sets),
                "our_ties_inside_tp_groups": f"{inside}/{len(ties)}",
                "searchable_convs": f"{searchable}/{total}",
            }
        )
    return rows


def _probe_module(op: str) -> nn.Module:
    """stem → a (1x1, 32 filters) → ``op`` → b → classifier: pruning ``a`` passes through ``op``."""

    class Probe(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
            self.a = nn.Sequential(nn.Conv2d(16, 32, 1), nn.BatchNorm2d(32), nn.ReLU())
            self.b = nn.Conv2d(32, 32, 3, padding=1, groups=4 if op == "grouped" else 1)
            self.fc = nn.Linear(32, 10)

        def forward(self, x):
            x = self.a(self.stem(x))
            if op == "shuffle":
                b, c, h, w = x.shape
                x = x.view(b, 2, c // 2, h, w).transpose(1, 2).reshape(b, c, h, w)
            elif op == "roll":
                x = torch.roll(x, 1, dims=1)
            elif op == "flip":
                x = x.flip(1)
            return self.fc(self.b(x).mean((2, 3)))

    return Probe().eval()


def bench_silent_errors() -> list[dict]:
    """Prune the last 4 filters of ``a`` through an op that moves channels or a grouped
    convolution; compare with the original network whose 4 channels are zeroed (error 0 = the
    pruned network is the original without those channels)."""
    import torch_pruning as tp

    from netadapt.trace.report import _status

    rows = []
    for op in ("shuffle", "roll", "flip", "grouped"):
        model = _probe_module(op)
        x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
        pruned = copy.deepcopy(model)
        idxs = [28, 29, 30, 31]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            graph = tp.DependencyGraph().build_dependency(pruned, example_inputs=x)
            graph.get_pruning_group(pruned.a[0], tp.prune_conv_out_channels, idxs=idxs).prune()

        def zero(module, inputs, out, idxs=idxs):
            out = out.clone()
            out[:, idxs] = 0
            return out

        handle = model.a.register_forward_hook(zero)
        with torch.no_grad():
            error = float((pruned(x) - model(x)).abs().max())
        handle.remove()
        net = supernet_from_module(model, x[:1])
        conv = next(c for c in net.plan.convs if c.target == "a.0")
        status, why = _status(net, conv)
        if status == "searchable":
            layer = net.space.layers[net.layer_of[conv.node]]
            why = f"widths {list(layer.widths)}"
        rows.append({"op": op, "torch_pruning_error": error, "torch_pruning_warnings": len(caught), "ours": f"{status}: {why}"})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", type=int, default=10_000, help="random architectures for MAC counting")
    parser.add_argument("--repeat", type=int, default=3, help="timed tracing runs (median)")
    parser.add_argument("--size", type=int, default=224, help="input size of the Torch-Pruning comparison")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-torch-pruning", action="store_true")
    parser.add_argument("--verify", type=int, default=0, metavar="N", help="also check N random architectures per model at 64x64")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    result = {"machine": f"{platform.machine()}, python {platform.python_version()}, torch {torch.__version__}"}
    result.update(bench_tracing(args.repeat))
    result.update(bench_counting(args.archs, args.seed))
    print(result["machine"])
    verdict = "meets" if result["resnet50_224_trace_s"] < TRACE_GOAL_S else "misses"
    print(f"trace ResNet-50 at 224x224: {result['resnet50_224_trace_s']:.2f} s ({verdict} the goal of {TRACE_GOAL_S:.0f} s)")
    for name in ("resnet50", "mobilenet_v2"):
        rate = result[f"{name}_traced_macs_per_s"]
        print(f"count_macs {name} traced: {rate:,.0f} archs/s ({'meets' if rate >= COUNT_GOAL else 'misses'} {COUNT_GOAL:,}/s)")
    zoo = result["mobilenet_v2_zoo_macs_per_s"]
    print(
        f"count_macs mobilenet_v2 zoo (same space): {zoo:,.0f} archs/s; traced/zoo = {result['mobilenet_v2_traced_macs_per_s'] / zoo:.2f}x"
    )
    if not args.no_torch_pruning:
        try:
            import torch_pruning  # noqa: F401
        except ImportError:
            print("torch-pruning is not installed: comparison skipped")
        else:
            result["torch_pruning"] = bench_torch_pruning(args.size)
            result["silent_errors"] = bench_silent_errors()
            print(f"Torch-Pruning DependencyGraph vs our tracer at {args.size}x{args.size}:")
            for row in result["torch_pruning"]:
                print("  " + ", ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))
            print("pruning 4 filters before an op that moves channels or a grouped convolution (error vs zeroing them):")
            for row in result["silent_errors"]:
                print(
                    f"  {row['op']}: Torch-Pruning max error {row['torch_pruning_error']:.3g} with "
                    f"{row['torch_pruning_warnings']} warnings; ours: the layer is {row['ours']}"
                )
    if args.verify:
        result["verify"] = verify((*MODELS, *(f"timm:{m}" for m in TIMM_MODELS)), 64, args.verify)
        print(f"verification at 64x64, {args.verify} random architectures per model (relative to the output's largest value):")
        for row in result["verify"]:
            print("  " + ", ".join(f"{k} {v:.2g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
