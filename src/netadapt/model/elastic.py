"""What every super-network's forward pass shares, zoo-built (:class:`~netadapt.model.SuperNet`)
or traced (:class:`~netadapt.trace.GraphSuperNet`): the input check, turning an architecture or
per-image widths into a :class:`~netadapt.model.layers.Choice`, and the three calls
``net(x)`` (the initial network), ``net(x, arch)`` (one sub-network for every image) and
``net(x, widths=W, kernels=K, groups=G)`` (ordered dropout, one sub-network per image or group).
A subclass runs the network in :meth:`ElasticNet._forward_plain` and
:meth:`ElasticNet._forward_choice`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import torch
from torch import Tensor, nn

from netadapt.arch.space import Architecture, SearchSpace
from netadapt.errors import NetAdaptError
from netadapt.model.layers import Choice, check_groups

__all__ = ["ElasticNet"]


class ElasticNet(nn.Module):
    """Base of the super-networks.  A subclass sets ``space``, ``in_channels``, ``input_size``,
    the buffers ``_max_filters`` and ``_full_kernels`` (one entry per searchable layer), a
    ``name``, and ``_made`` (how its input size was fixed, for errors)."""

    space: SearchSpace
    in_channels: int
    input_size: int
    _made = "built"

    def _forward_plain(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def _forward_choice(self, x: Tensor, choice: Choice) -> Tensor:
        raise NotImplementedError

    def _check_input(self, x: Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise NetAdaptError(f"{self.name} expects input of shape (B, {self.in_channels}, H, W), got {tuple(x.shape)}")
        if x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
            raise NetAdaptError(
                f"{self.name} was {self._made} for {self.input_size}x{self.input_size} inputs, got "
                f"{x.shape[-2]}x{x.shape[-1]}" + (f"; rebuild it with input_size={x.shape[-1]}" if self._made == "built" else "")
            )

    def choice(self, arch: Architecture, batch: int) -> Choice:
        """Per-image choices with every image running ``arch``."""
        self.space.validate(arch)
        device = self._max_filters.device
        filters = torch.tensor(arch.filters, dtype=torch.long, device=device).expand(batch, -1)
        kernels = torch.tensor(arch.kernels, dtype=torch.long, device=device).expand(batch, -1)
        return Choice(filters, kernels)

    def _choice_from_tensors(self, widths: Tensor, kernels: Tensor | None, batch: int) -> Choice:
        n = len(self.space)
        if widths.shape != (batch, n):
            raise NetAdaptError(f"widths must have shape (batch, layers) = ({batch}, {n}), got {tuple(widths.shape)}")
        widths = widths.to(self._max_filters.device, torch.long)
        # (Checked in eager mode; reading a tensor's value would break a compiled graph.)
        if not torch.compiler.is_compiling() and (bool((widths < 0).any()) or bool((widths > self._max_filters).any())):
            raise NetAdaptError("widths must lie between 0 and each layer's full width")
        if kernels is None:
            kernels = self._full_kernels.expand(batch, -1)
        elif kernels.shape != (batch, n):
            raise NetAdaptError(f"kernels must have shape ({batch}, {n}), got {tuple(kernels.shape)}")
        return Choice(widths, kernels.to(widths.device, torch.long))

    def forward(
        self,
        x: Tensor,
        arch: Architecture | None = None,
        *,
        widths: Tensor | None = None,
        kernels: Tensor | None = None,
        groups: Sequence[int] | None = None,
    ) -> Tensor:
        """The full network (no ``arch``, no ``widths``), the sub-network ``arch`` for every
        image, or per-image ``widths`` (B, L) and ``kernels`` (B, L) (ordered dropout).
        ``groups``: sizes of consecutive runs of images sharing one sub-network, normalized
        apart in training mode (:func:`~netadapt.model.layers.grouped_batch_norm`)."""
        self._check_input(x)
        if arch is not None and widths is not None:
            raise NetAdaptError("pass either an architecture or per-image widths, not both")
        if arch is None and widths is None:
            return self._forward_plain(x)
        batch = x.shape[0]
        choice = self.choice(arch, batch) if arch is not None else self._choice_from_tensors(widths, kernels, batch)
        if groups is not None:
            choice = replace(choice, groups=check_groups(groups, batch))
        return self._forward_choice(x, choice)
