"""Diagnostics of a finished search, scored with the super-network's shared weights exactly as
the search scored its samples (``bench_ranking``'s scoring: the super-network's held-out split,
BatchNorm recalibrated per architecture; every rescored sample is checked against the history).

``noise``: are the search's choices signal or noise, measured on the same images?  ``noise.json``
of a search run folder compares the gap between an iteration's best and second-best sample with
the standard error of *one* score, sqrt(p(1 - p) / n).  Two samples of one iteration are scored
on the same held-out images by networks that share most of their weights, so their errors are
correlated and the standard error of their *difference* is smaller: from the images only one of
the two gets right (b for the first, c for the second), ``SE(p1 - p2) = sqrt(b + c - (b - c)^2 /
n) / n`` (the paired, McNemar-style standard error).  The best, second-best and median sample of
each iteration are rescored image by image; per iteration the gaps, the paired standard errors,
and how many held-out images would make the best-vs-second gap one paired standard error.

``block-removal``: would the search have taken a whole-block removal if it could have proposed
one?  For chosen iterations the previous best is scored with each removable block still present
removed (nothing else shrunk): how much of the initial resource the removal cuts, its score, and
where it would have ranked among the iteration's samples by score (``selection: accuracy``) and
by score lost per unit of resource removed (``selection: ratio``).

docs/search.md and docs/RESULTS.md have the figures of the ``compare_cifar --size cpu-v3`` 50%
search:

    python benchmarks/search_diagnostics.py noise --search runs/compare-cpu-v3/search-0.5 \\
        --supernet runs/compare-cpu-v3/supernets/pre-spread-prog-g8/supernet.pt --size cpu-v3
    python benchmarks/search_diagnostics.py block-removal --search runs/compare-cpu-v3/search-0.5 \\
        --supernet runs/compare-cpu-v3/supernets/pre-spread-prog-g8/supernet.pt --size cpu-v3
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import math
import statistics
import sys
from pathlib import Path

import torch

from netadapt.allocator import retain_freed_memory
from netadapt.arch.space import Architecture
from netadapt.io import atomic_write, read_jsonl
from netadapt.model.checkpoint import load_supernet


@functools.cache
def _ranking():
    """benchmarks/bench_ranking.py (its sizes and shared-weight scoring), loaded once by path."""
    spec = importlib.util.spec_from_file_location("bench_ranking", Path(__file__).with_name("bench_ranking.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write_rows(rows: list[dict], out: Path) -> None:
    text = "".join(json.dumps(row) + "\n" for row in rows)
    atomic_write(out, lambda f: f.write(text.encode()))


def paired_se(first: torch.Tensor, second: torch.Tensor) -> float:
    """Standard error of the difference of two accuracies on the same images, from their
    per-image correctness (bool tensors of equal length)."""
    n = first.numel()
    b = int((first & ~second).sum())
    c = int((~first & second).sum())
    return math.sqrt(max(b + c - (b - c) ** 2 / n, 0.0)) / n


def correctness(supernet_file: Path, archs: list[Architecture], size: dict) -> list[torch.Tensor]:
    """Per-image top-1 correctness of every architecture on the super-network's held-out split,
    prepared as the search prepares a sample (BatchNorm recalibrated on its calibration images)."""
    outputs = _ranking().shared_outputs(supernet_file, archs, size)
    return [torch.cat([logits.argmax(1) == y for logits, y in batches]) for _, batches in outputs]


def noise(search: Path, supernet: Path, size: str, iterations: list[int] | None, out: Path) -> list[dict]:
    """One row per iteration (written to ``out`` as JSON lines)."""
    rows = [r for r in read_jsonl(search / "history.jsonl") if not r.get("discarded") and r["iteration"] > 0]
    present = sorted({r["iteration"] for r in rows})
    chosen = present if iterations is None else [i for i in iterations if i in present]
    if not chosen:
        raise SystemExit(f"error: none of the iterations {iterations} is finished in {search}")
    picks, archs = [], []
    for it in chosen:
        ranked = sorted((r for r in rows if r["iteration"] == it), key=lambda r: -r["score"])
        trio = [ranked[0], ranked[1], ranked[len(ranked) // 2]]
        picks.append(trio)
        archs += [Architecture.from_dict(r["arch"]) for r in trio]
    hits = correctness(supernet, archs, _ranking().SIZES[size])
    result = []
    for k, (it, trio) in enumerate(zip(chosen, picks, strict=True)):
        best, second, median = hits[3 * k : 3 * k + 3]
        n = best.numel()
        for row, h in zip(trio, (best, second, median), strict=True):  # the search's own scores, image by image
            if abs(float(h.float().mean()) - row["score"]) > 0.5 / n:
                raise SystemExit(
                    f"error: iteration {it}: rescored {float(h.float().mean()):.4f}, the search had {row['score']:.4f}"
                )
        gap, se = trio[0]["score"] - trio[1]["score"], paired_se(best, second)
        p = trio[0]["score"]
        result.append(
            {
                "iteration": it,
                "samples": sum(r["iteration"] == it for r in rows),
                "images": n,
                "best": p,
                "gap_second": gap,
                "paired_se_second": se,
                "gap_median": p - trio[2]["score"],
                "paired_se_median": paired_se(best, median),
                "unpaired_se": math.sqrt(p * (1 - p) / n),
                "images_for_one_se": math.ceil(n * (se / gap) ** 2) if gap > 0 else None,
            }
        )
    _write_rows(result, out)
    return result


def probe(search: Path, supernet: Path, size: str, iterations: list[int], out: Path) -> list[dict]:
    """One row per (iteration, present block); scores cached in ``out``'s folder."""
    ranking = _ranking()
    rows = [r for r in read_jsonl(search / "history.jsonl") if not r.get("discarded")]
    best = {r["iteration"]: r for r in rows if r.get("selected")}
    net, _ = load_supernet(supernet)
    space = net.space
    initial = best[0]["resource"]
    candidates = []
    for it in iterations:
        if it not in best or it - 1 not in best:
            raise SystemExit(f"error: iteration {it} (and {it - 1}) must be finished in {search}")
        prev = Architecture.from_dict(best[it - 1]["arch"])
        for group in space.removal_groups():
            convs = [i for i in group if space.layers[i].kind != "se"]
            if all(prev.filters[i] == 0 for i in convs):
                continue  # already removed
            filters = [0 if i in group else f for i, f in enumerate(prev.filters)]
            candidates.append((it, space.layers[convs[0]].name, prev.replace(filters=filters)))
    if not candidates:
        raise SystemExit(f"error: the space of {supernet} has no removable block present at those iterations")
    chosen_archs = [Architecture.from_dict(best[it]["arch"]) for it in iterations]  # rescored: the check that
    # this scoring is the search's
    archs = [a for _, _, a in candidates] + chosen_archs
    scores = ranking.shared_scores(supernet, archs, ranking.SIZES[size], out.with_suffix(".scores.json"))
    result = []
    for it, block, arch in candidates:
        prev, chosen = best[it - 1], best[it]
        samples = [r for r in rows if r["iteration"] == it]
        score, cost = scores[ranking.arch_key(arch)], float(net.macs(arch))
        ratio = (prev["score"] - score) / (prev["resource"] - cost)
        ratios = [(prev["score"] - r["score"]) / (prev["resource"] - r["resource"]) for r in samples]
        result.append(
            {
                "iteration": it,
                "block": block,
                "removed_score": score,
                "removed_cut": (prev["resource"] - cost) / initial,
                "chosen_score": chosen["score"],
                "chosen_cut": (prev["resource"] - chosen["resource"]) / initial,
                "chosen_rescored": scores[ranking.arch_key(Architecture.from_dict(chosen["arch"]))],
                "rank_by_score": 1 + sum(r["score"] > score for r in samples),
                "rank_by_ratio": 1 + sum(x < ratio for x in ratios),
                "samples": len(samples),
            }
        )
    _write_rows(result, out)
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    for name, help_text in (("noise", "paired noise of best vs second and median sample"),
                            ("block-removal", "rank each block's removal among an iteration's samples")):  # fmt: skip
        c = sub.add_parser(name, help=help_text)
        c.add_argument("--search", type=Path, required=True, help="a finished search's run folder")
        c.add_argument("--supernet", type=Path, required=True, help="the super-network it searched")
        c.add_argument("--size", default="cpu-v3", help="bench_ranking size (calibration images)")
        c.add_argument("--out", type=Path, default=None, help="rows as JSON lines (default SEARCH/COMMAND.jsonl)")
        c.add_argument("--threads", type=int, default=1)
    sub.choices["noise"].add_argument("--iterations", type=int, nargs="+", default=None, help="default: every iteration")
    sub.choices["block-removal"].add_argument("--iterations", type=int, nargs="+", default=[1, 4, 7, 10, 13, 16])
    args = p.parse_args(argv)
    retain_freed_memory()
    torch.set_num_threads(args.threads)
    out = args.out or args.search / f"{args.command}.jsonl"
    med = statistics.median
    if args.command == "block-removal":
        rows = probe(args.search, args.supernet, args.size, args.iterations, out)
        ranks = [r["rank_by_score"] for r in rows]
        print(f"{len(rows)} removals probed: rank by score median {med(ranks):g}, best {min(ranks)}; "
              f"in the top 3 {sum(r <= 3 for r in ranks)}; by score lost per resource in the top 5 "
              f"{sum(r['rank_by_ratio'] <= 5 for r in rows)}")  # fmt: skip
        return 0
    rows = noise(args.search, args.supernet, args.size, args.iterations, out)
    print(f"{len(rows)} iterations: best - second median {100 * med(r['gap_second'] for r in rows):.2f} points, paired SE "
          f"{100 * med(r['paired_se_second'] for r in rows):.2f} (unpaired {100 * med(r['unpaired_se'] for r in rows):.2f}); "
          f"best - median sample {100 * med(r['gap_median'] for r in rows):.2f}, paired SE "
          f"{100 * med(r['paired_se_median'] for r in rows):.2f}; beyond one paired SE: "
          f"{sum(r['gap_second'] > r['paired_se_second'] for r in rows)} (second), "
          f"{sum(r['gap_median'] > r['paired_se_median'] for r in rows)} (median)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
