"""Forward+backward time of an ordered-dropout batch against the plain full network.

Both run the same super-network, batch and input in one process; the figure is the ratio
(ordered dropout / plain).  Ordered dropout gives every image its own sub-network: per-image
widths (each width choice about equally often per layer, paper §2.3) and kernel sizes.  The
paper reports 1.19x per super-network training epoch with channel-level bypass (Table 11).

    python benchmarks/bench_ordered_dropout.py [--model mobilenet_v2_cifar] [--batch 64] [--device cpu]
"""

from __future__ import annotations

import argparse
import platform

import torch
from torch.utils import benchmark

import netadapt


def stratified_choices(space, batch: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image widths and kernels: every choice about equally often in the batch, per layer."""
    widths, kernels = [], []
    for layer in space.layers:
        for options, out in ((layer.widths, widths), (layer.kernels, kernels)):
            column = torch.tensor(options).repeat(batch // len(options) + 1)[:batch]
            out.append(column[torch.randperm(batch, generator=generator)])
    return torch.stack(widths, 1), torch.stack(kernels, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mobilenet_v2_cifar")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--input-size", type=int)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--min-run-time", type=float, default=2.0, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=5, help="alternating measurement rounds")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    net = netadapt.build_supernet(args.model, input_size=args.input_size).to(args.device).train()
    size = net.input_size
    x = torch.randn(args.batch, 3, size, size, device=args.device)
    widths, kernels = stratified_choices(net.space, args.batch, torch.Generator().manual_seed(0))
    widths, kernels = widths.to(args.device), kernels.to(args.device)

    def plain() -> None:
        net(x).sum().backward()

    def ordered_dropout() -> None:
        net(x, widths=widths, kernels=kernels).sum().backward()

    # Alternate the two measurements over several rounds and keep the median of the per-round
    # ratios, so that load from other processes affects both sides alike.
    fns = {"plain": plain, "od": ordered_dropout}
    for fn in fns.values():
        fn()  # warm-up
    times: dict[str, list[float]] = {"plain": [], "od": []}
    for _ in range(args.rounds):
        for key, fn in fns.items():
            timer = benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=args.threads)
            times[key].append(timer.blocked_autorange(min_run_time=args.min_run_time).median)
    ratios = sorted(o / p for o, p in zip(times["od"], times["plain"], strict=True))
    ratio = ratios[len(ratios) // 2]
    base, od = sorted(times["plain"])[args.rounds // 2], sorted(times["od"])[args.rounds // 2]
    print(f"model {args.model}  input {size}  batch {args.batch}  device {args.device}  threads {args.threads}")
    print(f"machine {platform.machine()} {platform.processor() or ''}  torch {torch.__version__}")
    print(f"plain full network  fwd+bwd {base * 1e3:8.1f} ms   {args.batch / base:8.1f} images/s")
    print(f"ordered dropout     fwd+bwd {od * 1e3:8.1f} ms   {args.batch / od:8.1f} images/s")
    print(f"ratio ordered dropout / plain = {ratio:.2f}x  (median of {args.rounds} rounds; paper: 1.19x per epoch with bypass)")


if __name__ == "__main__":
    main()
