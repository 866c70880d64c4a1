"""The uniformly scaled baseline at the discovered network's resource (issue 15)."""

from __future__ import annotations

import pytest

from netadapt import build_supernet, count_macs
from netadapt.errors import NetAdaptError
from netadapt.search.baseline import uniform_matching


@pytest.mark.parametrize("name", ["mobilenet_v1_cifar", "mobilenet_v3_small_cifar", "mobilenet_v2_cifar"])
@pytest.mark.parametrize("fraction", [0.3, 0.5, 0.71])
def test_uniform_baseline_lands_within_two_percent_of_the_budget(name: str, fraction: float) -> None:
    net = build_supernet(name, width_mult=0.5, num_classes=10)

    def macs(a):
        return float(count_macs(net, a))

    budget = fraction * macs(net.space.full())
    match = uniform_matching(net.space, macs, budget)
    assert abs(match.error) <= 0.02 and match.resource == macs(match.arch)
    arch = match.arch
    assert not net.space.removed_blocks(arch) and all(f > 0 for f in arch.filters)  # uniform: nothing removed
    # every layer sits next to one multiplier on its grid (the width below or above it)
    for layer, f in zip(net.space.layers, arch.filters, strict=True):
        options = sorted(w for w in layer.widths if w > 0)
        below = max([w for w in options if w <= match.multiplier * layer.max_filters + 1e-9] or [options[0]])
        above = min([w for w in options if w >= match.multiplier * layer.max_filters - 1e-9] or [options[-1]])
        assert f in (below, above), layer.name
    # the plain multiplier misses the budget by more on this grid
    plain = min((net.space.uniform(r / 100) for r in range(1, 101)), key=lambda a: abs(macs(a) / budget - 1))
    assert abs(match.error) <= abs(macs(plain) / budget - 1) + 1e-12


def test_a_budget_below_the_smallest_uniform_network_is_an_error() -> None:
    net = build_supernet("mobilenet_v1_cifar", width_mult=0.25, num_classes=10)
    with pytest.raises(NetAdaptError, match="no uniformly scaled network"):
        uniform_matching(net.space, lambda a: float(count_macs(net, a)), 10.0)


def test_uniform_neighbours_bracket_a_budget_of_a_resource_that_does_not_fall_with_width() -> None:
    """A latency-like resource, three times higher for odd channel counts (as ONNX Runtime's CPU
    kernels for counts off multiples of 8): no uniform network may match, the neighbours bracket."""
    from netadapt.search.baseline import _rounded, uniform_neighbours

    net = build_supernet("mobilenet_v3_small_cifar", width_mult=0.5, num_classes=10)

    def jagged(a):
        return float(count_macs(net, a)) * (3.0 if any(f % 2 for f in a.filters) else 1.0)

    full = jagged(net.space.full())
    budget = 0.45 * full
    below, above = uniform_neighbours(net.space, jagged, budget)
    assert below.resource <= budget < above.resource
    assert below.resource == jagged(below.arch) and above.resource == jagged(above.arch)
    others = [jagged(_rounded(net.space, k / 64, frozenset())) for k in range(1, 65)]
    assert not any(below.resource < v <= budget or budget < v < above.resource for v in others)  # the closest ones
    with pytest.raises(NetAdaptError, match="outside the uniform networks' range"):
        uniform_neighbours(net.space, jagged, 10 * full)


def test_the_pipeline_baseline_falls_back_to_the_closest_uniform_network_below(caplog: pytest.LogCaptureFixture) -> None:
    """``netadapt run`` does not fail at its last stage when no uniform network lands within 2%:
    it takes the closest one below the budget and warns; no baseline when none fits."""
    from netadapt.pipeline.run import _uniform_match
    from netadapt.search.baseline import uniform_neighbours

    net = build_supernet("mobilenet_v3_small_cifar", width_mult=0.5, num_classes=10)

    def jagged(a):
        return float(count_macs(net, a)) * (3.0 if any(f % 2 for f in a.filters) else 1.0)

    budget = 0.45 * jagged(net.space.full())
    with pytest.raises(NetAdaptError):
        uniform_matching(net.space, jagged, budget)
    with caplog.at_level("WARNING"):
        arch = _uniform_match(net, jagged, budget)
    assert arch == uniform_neighbours(net.space, jagged, budget)[0].arch and jagged(arch) <= budget
    assert "closest one below" in caplog.text
    assert _uniform_match(net, jagged, 1.0) is None  # below every uniform network: no baseline
    # where one matches, the fallback is not taken
    macs = lambda a: float(count_macs(net, a))  # noqa: E731
    assert (
        _uniform_match(net, macs, 0.5 * macs(net.space.full()))
        == uniform_matching(net.space, macs, 0.5 * macs(net.space.full())).arch
    )
