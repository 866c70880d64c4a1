"""Training-step time of ordered-dropout super-network training against plain training.

Both run in the same process on the same network and batch: *plain* is the initial network
trained as an ordinary model (``net(x)``), *ordered dropout* draws stratified per-image widths
and kernel sizes for the batch (paper §2.3) and runs ``net(x, widths=W, kernels=K)``.  Each
step is forward, loss, backward and an RMSProp update.  The two kinds of steps are interleaved
step by step so that load changes on a shared machine affect both alike; the ratio of medians
and the ratio of minima (the least disturbed steps) are reported.

    python benchmarks/bench_train_step.py                         # CPU, mobilenet_v3_small_cifar
    python benchmarks/bench_train_step.py --device cuda --compile --precision bf16

Goals (issue 3): ratio ≤ 1.30 on CPU, ≤ 1.10 on a GPU with compilation; the paper reports 1.19.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch
import torch.nn.functional as F

from netadapt import build_supernet
from netadapt.train import OrderedDropoutSampler, RMSpropTF


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="mobilenet_v3_small_cifar")
    p.add_argument("--width-mult", type=float, default=1.0)
    p.add_argument("--input-size", type=int, default=32)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=20, help="measured steps of each kind")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch threads on CPU (0: leave the default)")
    p.add_argument("--compile", action="store_true", help="torch.compile both training forwards")
    p.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32")
    p.add_argument("--no-kernels", action="store_true", help="keep superkernels at full size")
    p.add_argument("--channels-last", action="store_true")
    args = p.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    net = build_supernet(args.model, width_mult=args.width_mult, input_size=args.input_size, num_classes=10).to(device)
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    net = net.to(memory_format=memory_format)
    net.train()
    opt = RMSpropTF(net.parameters(), lr=1e-4)
    sampler = OrderedDropoutSampler(net.space, kernels=not args.no_kernels)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, 3, args.input_size, args.input_size, device=device).contiguous(memory_format=memory_format)
    y = torch.randint(10, (args.batch,), device=device)
    forward = torch.compile(net) if args.compile else net
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(args.precision)

    def step(ordered: bool) -> float:
        _sync(device)
        t0 = time.perf_counter()
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            if ordered:
                widths, kernels = sampler.sample(args.batch, gen)
                widths = widths.to(device, non_blocking=True)
                kernels = None if kernels is None else kernels.to(device, non_blocking=True)
                logits = forward(x, widths=widths, kernels=kernels)
            else:
                logits = forward(x)
            loss = F.cross_entropy(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        _sync(device)
        return time.perf_counter() - t0

    for _ in range(args.warmup):
        step(False)
        step(True)
    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(args.steps):
        for ordered in (False, True):
            times[ordered].append(step(ordered))
    plain, od = statistics.median(times[False]), statistics.median(times[True])
    result = {
        "model": args.model,
        "width_mult": args.width_mult,
        "input_size": args.input_size,
        "batch": args.batch,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "compile": args.compile,
        "precision": args.precision,
        "superkernels": not args.no_kernels and any(len(layer.kernels) > 1 for layer in net.space.layers),
        "plain_ms": round(plain * 1e3, 2),
        "ordered_dropout_ms": round(od * 1e3, 2),
        "ratio": round(od / plain, 3),
        "ratio_of_minima": round(min(times[True]) / min(times[False]), 3),
        "plain_images_per_s": round(args.batch / plain, 1),
        "ordered_dropout_images_per_s": round(args.batch / od, 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
