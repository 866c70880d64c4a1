"""Would a finished search have taken a whole-block removal if it could have proposed one?

For chosen iterations of a search run folder (``history.jsonl``), the previous best architecture
is scored with each removable block still present removed (nothing else shrunk), with the
super-network's shared weights exactly as the search scores its samples (``bench_ranking``'s
``shared_scores``: the super-network's held-out split, BatchNorm recalibrated per architecture).
Each row says how much of the initial resource the removal cuts, its score, and where it would
have ranked among the iteration's samples by score (``selection: accuracy``) and by score lost
per unit of resource removed (``selection: ratio``).  docs/search.md has the figures of the
``compare_cifar --size cpu-v3`` 50% search.

    python benchmarks/probe_block_removal.py --search runs/compare-cpu-v3/search-0.5 \\
        --supernet runs/compare-cpu-v3/supernets/pre-spread-prog-g8/supernet.pt --size cpu-v3
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
from pathlib import Path

import torch

from netadapt.allocator import retain_freed_memory
from netadapt.arch.space import Architecture
from netadapt.io import atomic_write, read_jsonl
from netadapt.model.checkpoint import load_supernet


def _ranking():
    spec = importlib.util.spec_from_file_location("bench_ranking", Path(__file__).with_name("bench_ranking.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
    text = "".join(json.dumps(row) + "\n" for row in result)
    atomic_write(out, lambda f: f.write(text.encode()))
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--search", type=Path, required=True, help="a finished MAC search's run folder")
    p.add_argument("--supernet", type=Path, required=True, help="the super-network it searched")
    p.add_argument("--size", default="cpu-v3", help="bench_ranking size (calibration images)")
    p.add_argument("--iterations", type=int, nargs="+", default=[1, 4, 7, 10, 13, 16])
    p.add_argument("--out", type=Path, default=None, help="rows as JSON lines (default SEARCH/block_removal_probe.jsonl)")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    retain_freed_memory()
    torch.set_num_threads(args.threads)
    rows = probe(args.search, args.supernet, args.size, args.iterations, args.out or args.search / "block_removal_probe.jsonl")
    ranks = [r["rank_by_score"] for r in rows]
    print(f"{len(rows)} removals probed: rank by score median {statistics.median(ranks):g}, best {min(ranks)}; "
          f"in the top 3 {sum(r <= 3 for r in ranks)}; by score lost per resource in the top 5 "
          f"{sum(r['rank_by_ratio'] <= 5 for r in rows)}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
