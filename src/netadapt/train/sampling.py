"""Per-image sub-network choices for ordered-dropout training (paper §2.3).

"For each layer, we sample each layer width almost the same number of times in a
forward-backward pass to avoid biasing towards any specific layer widths."  For a batch of ``B``
images and a layer with ``n`` width choices, every choice is given to ``B // n`` images and the
``B mod n`` left-over images get distinct choices picked at random; the column is then shuffled,
independently for every layer, so that an image's widths in different layers are unrelated.
Tied layers (``space.tie_groups()``) share one column.  Superkernel sizes are drawn the same
way, per layer.  The super-network turns the widths into ordered-dropout masks on the
convolution path and their complement on the bypass path (paper Fig. 5).

Beyond the paper (off by default): ``sandwich`` replaces the first two rows of every batch with
the largest and the smallest sub-network (the "sandwich rule" of slimmable networks / BigNAS).

All draws come from the ``torch.Generator`` passed in.  Under distributed training every rank
draws the *global* batch's choices from an identically seeded generator and keeps its own rows,
so the stratification holds over the global batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from netadapt.arch.space import SearchSpace

__all__ = ["OrderedDropoutSampler", "stratified_column"]


def stratified_column(choices: Sequence[int], batch: int, generator: torch.Generator) -> Tensor:
    """``batch`` values of ``choices``, each appearing ``batch // n`` or ``batch // n + 1`` times, shuffled.

    Returns a (batch,) long tensor.
    """
    n = len(choices)
    counts = torch.full((n,), batch // n, dtype=torch.long)
    extra = torch.randperm(n, generator=generator)[: batch % n]  # which choices get one more image
    counts[extra] += 1
    values = torch.as_tensor(list(choices), dtype=torch.long).repeat_interleave(counts)  # (batch,)
    return values[torch.randperm(batch, generator=generator)]


@dataclass(frozen=True)
class OrderedDropoutSampler:
    """Draws (widths, kernels) tensors of shape (B, L) for a batch; column ``i`` = space layer ``i``.

    ``kernels=False`` keeps every superkernel at its full size (the returned kernels tensor is
    then ``None``).
    """

    space: SearchSpace
    kernels: bool = True
    sandwich: bool = False

    def largest(self) -> tuple[list[int], list[int]]:
        """(widths, kernels) of the initial network."""
        return [layer.max_filters for layer in self.space.layers], [layer.max_kernel for layer in self.space.layers]

    def smallest(self) -> tuple[list[int], list[int]]:
        """(widths, kernels) of the smallest sub-network of the space."""
        return [min(layer.widths) for layer in self.space.layers], [min(layer.kernels) for layer in self.space.layers]

    def sample(self, batch: int, generator: torch.Generator) -> tuple[Tensor, Tensor | None]:
        """Per-image widths (B, L) and kernels (B, L) or ``None`` for ``batch`` images."""
        layers = self.space.layers
        rows = batch - 2 if self.sandwich and batch > 2 else batch
        widths = torch.empty(batch, len(layers), dtype=torch.long)  # (B, L)
        for group in self.space.tie_groups():
            column = stratified_column(layers[group[0]].widths, rows, generator)
            for i in group:
                widths[batch - rows :, i] = column
        kernels = None
        if self.kernels:
            kernels = torch.empty(batch, len(layers), dtype=torch.long)  # (B, L)
            for i, layer in enumerate(layers):
                kernels[batch - rows :, i] = stratified_column(layer.kernels, rows, generator)
        if rows < batch:  # sandwich rows 0 (largest) and 1 (smallest)
            for row, (w, k) in enumerate((self.largest(), self.smallest())):
                widths[row] = torch.as_tensor(w)
                if kernels is not None:
                    kernels[row] = torch.as_tensor(k)
        return widths, kernels
