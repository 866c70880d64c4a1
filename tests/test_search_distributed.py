"""Spreading sample evaluation: torch.distributed ranks (gloo, 2 processes) and a worker pool."""

from __future__ import annotations

import json
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import netadapt
from netadapt.io import read_jsonl
from netadapt.search import SearchConfig, search
from netadapt.search.distributed import map_shared
from netadapt.search.evaluate import EvalConfig, shared_weight_evaluator

CONFIG = SearchConfig(samples=6, layers=3, initial_reduction=0.08, decay=1.0, target=0.6)


def _net():
    torch.manual_seed(0)
    return netadapt.build_supernet("mobilenet_v1_cifar", width_mult=0.25, input_size=16, num_classes=10).eval()


def _data(seed):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(8, 3, 16, 16, generator=g), torch.randint(10, (8,), generator=g)) for _ in range(2)]


def _mean_logit(outputs, targets):
    return float(outputs.sum()), outputs.numel()


def _run_search(run_dir, record):
    torch.set_num_threads(1)
    net = _net()
    evaluator = shared_weight_evaluator(net, _data(1), _data(2), EvalConfig(calibration_images=16), metric_fn=_mean_logit)
    local = evaluator._evaluate_local

    def spy(archs):
        record.extend(archs)
        return local(archs)

    evaluator._evaluate_local = spy
    return search(
        net.space, net.space.full(), lambda a: netadapt.count_macs(net, a), evaluator, CONFIG, rng_seed=0, run_dir=run_dir
    )


def _rank_main(rank, world, init_file, out_dir):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        gathered = map_shared(lambda items: [(x, dist.get_rank()) for x in items], list(range(7)))
        mine: list = []
        result = _run_search(os.path.join(out_dir, "run"), mine)
        with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
            json.dump({"gathered": gathered, "final": list(result.final.filters), "evaluated": len(mine)}, f)
    finally:
        dist.destroy_process_group()


def test_two_ranks_share_the_samples_and_find_the_single_process_result(tmp_path):
    mp.spawn(_rank_main, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    single: list = []
    reference = _run_search(tmp_path / "single", single)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert ranks[0]["gathered"] == ranks[1]["gathered"] == [[i, i % 2] for i in range(7)]
    assert ranks[0]["final"] == ranks[1]["final"] == list(reference.final.filters)
    # each rank evaluated about half of the samples; together all of them
    assert ranks[0]["evaluated"] + ranks[1]["evaluated"] == len(single)
    assert abs(ranks[0]["evaluated"] - ranks[1]["evaluated"]) <= len(reference.trajectory)
    assert len(read_jsonl(tmp_path / "run" / "history.jsonl")) == len(read_jsonl(tmp_path / "single" / "history.jsonl"))


@pytest.mark.slow
def test_a_worker_pool_gives_the_in_process_scores():
    net = _net()
    archs = [net.space.uniform(r) for r in (0.25, 0.5, 0.75, 1.0)]
    config = EvalConfig(calibration_images=16)
    expected = shared_weight_evaluator(net, _data(1), _data(2), config, metric_fn=_mean_logit)(archs)
    pooled_config = EvalConfig(calibration_images=16, workers=2)
    with shared_weight_evaluator(net, _data(1), _data(2), pooled_config, metric_fn=_mean_logit) as pooled:
        assert pooled(archs) == pytest.approx(expected, rel=1e-4, abs=1e-6)  # other thread counts: rounding
        assert pooled._pool is not None
    assert pooled._pool is None
