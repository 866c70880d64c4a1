"""netadapt.evaluate runs a netadapt network as its inference copy: BatchNorm folded into the
convolutions and channels-last weights -- the same numbers up to rounding, the model untouched."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import netadapt
from netadapt.evaluate import ClassificationState, evaluate, evaluate_metrics, inference_copy
from netadapt.model.layers import ElasticConv


def _net(name: str = "mobilenet_v3_small_cifar") -> netadapt.SuperNet:
    torch.manual_seed(0)
    net = netadapt.build_supernet(name, width_mult=0.5, input_size=16, num_classes=10)
    with torch.no_grad():  # statistics of a trained network, so that folding has something to fold
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return net


def _norms(model: nn.Module) -> int:
    return sum(isinstance(m.bn, nn.BatchNorm2d) for m in model.modules() if isinstance(m, ElasticConv))


def _batches(count: int = 3, size: int = 8) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(size, 3, 16, 16, generator=g), torch.randint(10, (size,), generator=g)) for _ in range(count)]


@pytest.mark.parametrize("name", ["mobilenet_v1_cifar", "mobilenet_v3_small_cifar", "mobilenet_v2_cifar"])
def test_inference_copy_computes_the_same_outputs_and_leaves_the_model_alone(name):
    net = _net(name).train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    copied = inference_copy(net)
    assert copied is not net and not copied.training and net.training
    assert _norms(copied) == 0 and _norms(net) > 0  # folded in the copy, kept in the model
    conv = next(m.conv for m in copied.modules() if isinstance(m, ElasticConv) and m.conv is not None)
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    state = net.state_dict()
    assert state.keys() == before.keys() and all(torch.equal(state[k], before[k]) for k in before)
    x = _batches(1)[0][0]
    with torch.no_grad():
        net.eval()
        torch.testing.assert_close(copied(x), net(x), rtol=1e-4, atol=1e-5)
        arch = net.space.sample(torch.Generator().manual_seed(2))
        compact = net.extract(arch).eval()
        torch.testing.assert_close(inference_copy(compact)(x), compact(x), rtol=1e-4, atol=1e-5)


def test_evaluate_gives_the_numbers_of_the_model_as_it_is():
    net = _net()
    loader = _batches()
    arch = net.space.sample(torch.Generator().manual_seed(2))
    for model, a in ((net, None), (net, arch), (net.extract(arch), None)):
        fast = evaluate(model, loader, a)
        slow = evaluate_metrics(model, loader, ClassificationState(), a, fast=False)
        assert fast["top1"] == slow["top1"] and fast["images"] == slow["images"] == 24
        assert fast["loss"] == pytest.approx(slow["loss"], rel=1e-5)


def test_other_modules_are_evaluated_as_they_are():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.LazyLinear(10))
    model(torch.zeros(1, 3, 16, 16))
    assert inference_copy(model) is model
    assert evaluate(model, _batches())["images"] == 24


def test_a_model_with_forward_hooks_is_evaluated_itself():
    """A copy would run copies of the hooks, whose effects the caller would never see."""
    net = _net()
    calls = []
    net.register_forward_hook(lambda module, inputs, output: calls.append(len(output)))
    assert inference_copy(net) is net
    assert evaluate(net, _batches())["images"] == 24 and calls == [8, 8, 8]
