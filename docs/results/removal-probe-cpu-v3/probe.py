"""Would MCD take a whole-block removal if it could propose one?  For iterations of the finished
50% search (cpu-v3, pre-spread-prog-g8), score the previous best with each removable block removed
(shared weights, exactly as the search scores), next to the samples the search made."""
import json, sys
from pathlib import Path
sys.path.insert(0, "/work/main/benchmarks")
import bench_ranking as br
from netadapt.arch.space import Architecture
from netadapt.io import save_json
from netadapt.model.checkpoint import load_supernet
import torch
torch.set_num_threads(1)
root = Path("/work/runs/compare-cpu-v3")
sup = root / "supernets/pre-spread-prog-g8/supernet.pt"
rows = [json.loads(l) for l in open(root / "search-0.5/history.jsonl")]
net, _ = load_supernet(sup)
space = net.space
best = {r["iteration"]: r for r in rows if r["selected"]}
archs, meta = [], []
for it in (1, 4, 7, 10, 13, 16):
    prev = Architecture.from_dict(best[it - 1]["arch"])
    for group in space.removal_groups():
        if all(prev.filters[i] == 0 for i in group if space.layers[i].kind != "se"):
            continue
        f = list(prev.filters)
        for i in group: f[i] = 0
        a = prev.replace(filters=f)
        archs.append(a); meta.append((it, space.layers[group[0]].name, float(net.macs(a))))
scores = br.shared_scores(sup, archs, br.SIZES["cpu-v3"], Path("/work/runs/removal-probe/scores.json"))
out = []
for a, (it, name, macs) in zip(archs, meta):
    prev = best[it - 1]; its = [r for r in rows if r["iteration"] == it and not r["discarded"]]
    chosen = best[it]
    s = scores[br.arch_key(a)]
    ratio_rm = (prev["score"] - s) / (prev["resource"] - macs)
    ratios = [(prev["score"] - r["score"]) / (prev["resource"] - r["resource"]) for r in its]
    out.append(dict(iteration=it, block=name, removed_score=s, removed_drop=(prev["resource"]-macs)/11606272, chosen_score=chosen["score"],
                    chosen_drop=(prev["resource"]-chosen["resource"])/11606272, removed_ratio=ratio_rm, best_ratio=min(ratios),
                    rank_by_accuracy=sum(r["score"] > s for r in its) + 1, rank_by_ratio=sum(x < ratio_rm for x in ratios) + 1, samples=len(its)))
    print(json.dumps(out[-1]), flush=True)
save_json(Path("/work/runs/removal-probe/probe.json"), out)
