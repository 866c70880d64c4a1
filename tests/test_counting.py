"""Analytic MACs == MACs counted on the extracted model == published figures (REFERENCE.md)."""

import random

import pytest
import torch

import netadapt
from netadapt.resources import counted_macs, counted_params

from .paper_tables import TABLE8, TABLE9, TABLE10, mnv3_table_arch

REFERENCE = [  # (model, width_mult, MACs, parameters) from ../shared/REFERENCE.md
    ("mobilenet_v1", 1.0, 568_740_352, 4_231_976),
    ("mobilenet_v1", 0.75, 325_400_448, 2_585_560),
    ("mobilenet_v1", 0.5, 149_497_088, 1_331_592),
    ("mobilenet_v1", 0.25, 41_030_272, 470_072),
    ("mobilenet_v2", 1.0, 300_774_272, 3_504_872),
    ("mobilenet_v3_large", 1.0, 216_589_760, 5_483_032),
    ("mobilenet_v3_small", 1.0, 56_510_400, 2_542_856),
]


@pytest.mark.parametrize("name, mult, macs, params", REFERENCE)
def test_full_networks_match_published_figures(name, mult, macs, params):
    net = netadapt.build_supernet(name, width_mult=mult)
    assert netadapt.count_macs(net) == macs
    assert netadapt.count_params(net) == params
    assert counted_params(net) == params
    # published figures in millions, as REFERENCE.md rounds them
    assert round(macs / 1e6, 1) in {568.7, 325.4, 149.5, 41.0, 300.8, 216.6, 56.5}


def test_fastdepth_matches_published_figures():
    net = netadapt.build_supernet("fastdepth")
    assert netadapt.count_macs(net) == 736_658_944  # 736.66 M (FastDepth paper: 0.74 G)
    bn = sum(m.weight.numel() + m.bias.numel() for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert netadapt.count_params(net) - bn == 3_933_088  # weights without BN (FastDepth: 3.93 M)


@pytest.mark.parametrize("name", ["mobilenet_v3_large", "mobilenet_v2", "fastdepth", "mobilenet_v1"])
def test_analytic_counts_equal_counting_the_extracted_model(name):
    net = netadapt.build_supernet(name, input_size=96 if name != "fastdepth" else 64)
    rng = random.Random(0)
    archs = [net.space.full(), net.space.uniform(0.3)] + [net.space.sample(rng) for _ in range(4)]
    for arch in archs:
        compact = net.extract(arch)
        assert netadapt.count_macs(net, arch) == counted_macs(compact) == netadapt.count_macs(compact)
        assert netadapt.count_params(net, arch) == counted_params(compact)


def test_full_network_counted_on_the_real_module():
    net = netadapt.build_supernet("mobilenet_v3_large")
    assert counted_macs(net.extract(net.space.full())) == 216_589_760


def test_paper_tables_are_architectures_of_the_initial_networks():
    lat = netadapt.build_supernet("netadaptv2_latency")
    arch8 = mnv3_table_arch(lat, TABLE8)
    assert arch8.filters[lat.space.index("b11.dw")] == 0  # block 12 of Table 8 is removed
    macs = netadapt.build_supernet("netadaptv2_macs")
    arch9 = mnv3_table_arch(macs, TABLE9)
    # Table 9 is the paper's 314M-MAC network; the reconstruction counts within 1%.
    assert abs(netadapt.count_macs(macs, arch9) / 314e6 - 1) < 0.01
    depth = netadapt.build_supernet("fastdepth")
    arch10 = depth.space.make([f for f, _ in TABLE10], [k for _, k in TABLE10])
    assert netadapt.count_macs(depth, arch10) < 0.7 * netadapt.count_macs(depth)
    for net, arch in ((lat, arch8), (macs, arch9), (depth, arch10)):
        assert type(net.extract(arch)).__name__ == "CompactNet"


def test_counting_is_fast_enough_for_the_search():
    import time

    net = netadapt.build_supernet("mobilenet_v3_large")
    rng = random.Random(0)
    archs = [net.space.sample(rng) for _ in range(300)]
    start = time.perf_counter()
    for arch in archs:
        netadapt.count_macs(net, arch)
    per_arch = (time.perf_counter() - start) / len(archs)
    # A loose bound that still catches an accidental slow path (e.g. a forward pass per count);
    # the benchmark under benchmarks/ measures the real throughput.
    assert per_arch < 5e-3


def test_shipped_paper_architectures_are_the_tables():
    """src/netadapt/model/architectures/ holds Tables 8-10 as self-describing files (python -m
    tests.paper_tables rewrites them); the tests' own transcription of the tables is the check."""
    from netadapt.arch.files import NAMED_ARCHITECTURES, architecture_path

    from .paper_tables import SHIPPED, shipped_architecture

    assert set(NAMED_ARCHITECTURES.values()) == set(SHIPPED)
    for short, name in NAMED_ARCHITECTURES.items():
        _, _, text = shipped_architecture(name)
        assert architecture_path(short).read_text() == text, f"rewrite it: python -m tests.paper_tables ({name})"


def test_counting_something_that_is_no_network_is_a_one_line_error():
    from netadapt import NetAdaptError, count_macs, count_params

    for count in (count_macs, count_params):
        with pytest.raises(NetAdaptError, match=f"{count.__name__} counts a super-network or an nn.Module, got NoneType"):
            count(None)
