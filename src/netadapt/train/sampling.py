"""Per-image sub-network choices for ordered-dropout training (paper §2.3).

"For each layer, we sample each layer width almost the same number of times in a
forward-backward pass to avoid biasing towards any specific layer widths."  For a batch of ``B``
images and a layer with ``n`` width choices, every choice is given to ``B // n`` images and the
``B mod n`` left-over images get distinct choices picked at random; the column is then shuffled,
independently for every layer, so that an image's widths in different layers are unrelated.
Tied layers (``space.tie_groups()``) share one column.  Superkernel sizes are drawn the same
way, per layer.  The super-network turns the widths into ordered-dropout masks on the
convolution path and their complement on the bypass path (paper Fig. 5).

Removable blocks (``SearchSpace.removal_groups()``, the space's ``removal: block``) are removed
per image: a stratified share of the batch (by default one image in the number of width choices,
the share a width-0 choice would get) runs without the block, every other image draws non-zero
widths for its layers.  A progressive schedule (beyond the paper, as Once-for-All) can ask for
``phase="full"`` (every image runs the initial network) or ``phase="width"`` (widths only, no
block or layer removed; with ``floor`` falling from 1 to 0 over the phase, widths are added
from the full width down, Once-for-All's progressive shrinking) before ``phase="all"``.

Beyond the paper (off by default): ``sandwich`` replaces the first two rows of every batch with
the largest and the smallest sub-network (the "sandwich rule" of slimmable networks / BigNAS).
``largest_share`` gives that share of the rows (of the groups, with ``group_size``) to the largest
sub-network: per-image ordered dropout trains the initial network on one image in
``B / largest rows``, where plain training trains it on all.

Beyond the paper (off by default): ``group_size`` gives every run of that many consecutive images
one sub-network (the draws above are then per group, not per image), and the training forward
normalizes every group with its own BatchNorm statistics (:func:`group_sizes`,
:func:`~netadapt.model.layers.grouped_batch_norm`): a sub-network is then trained under the
normalization it meets when it runs alone (docs/training.md has the measurements).

All draws come from the ``torch.Generator`` passed in.  Under distributed training every rank
draws the *global* batch's choices from an identically seeded generator and keeps its own rows,
so the stratification holds over the global batch.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from netadapt.arch.space import SearchSpace

__all__ = ["PHASES", "OrderedDropoutSampler", "group_sizes", "stratified_column", "stratified_columns"]

#: What a batch may vary: nothing (the initial network), widths (no layer or block removed), all.
PHASES = ("full", "width", "all")


def stratified_column(choices: Sequence[int], batch: int, generator: torch.Generator) -> Tensor:
    """``batch`` values of ``choices``, each appearing ``batch // n`` or ``batch // n + 1`` times, shuffled.

    Returns a (batch,) long tensor.
    """
    n = len(choices)
    counts = [batch // n] * n
    for i in torch.randperm(n, generator=generator)[: batch % n].tolist():  # which choices get one more image
        counts[i] += 1
    # Built as a Python list: this runs for every layer of every step, and a tensor
    # repeat_interleave costs far more than the list (hundreds of µs with several threads).
    values = torch.tensor([c for c, k in zip(choices, counts, strict=True) for _ in range(k)], dtype=torch.long)  # (batch,)
    return values[torch.randperm(batch, generator=generator)]


def stratified_columns(choices: Sequence[Sequence[int]], batch: int, generator: torch.Generator) -> Tensor:
    """One :func:`stratified_column` per entry of ``choices``, drawn together: a (batch, n) long
    tensor whose column ``j`` holds every value of ``choices[j]`` ``batch // len`` or
    ``batch // len + 1`` times (the values getting one more a uniformly random subset), shuffled
    independently of the other columns.

    The same distribution as one :func:`stratified_column` per layer (other draws), in a handful
    of tensor operations instead of a few per layer: a training step draws every layer's widths
    and kernel sizes, and per layer that cost a MobileNetV1 step ~2% of its time on a CPU.
    """
    sizes = torch.tensor([len(c) for c in choices])  # (n,)
    widest = int(sizes.max())
    table = torch.tensor([list(c) + [0] * (widest - len(c)) for c in choices], dtype=torch.long)  # (n, widest)
    # a random order of every column's choices (padding sorted last); row r takes entry r mod len
    keys = torch.rand(len(choices), widest, generator=generator).masked_fill_(torch.arange(widest) >= sizes[:, None], 2.0)
    order = keys.argsort(1)  # (n, widest)
    position = torch.arange(batch)[:, None] % sizes  # (batch, n)
    picked = order.gather(1, position.T)  # (n, batch): index into each column's choices
    values = table.gather(1, picked)  # (n, batch)
    shuffle = torch.rand(len(choices), batch, generator=generator).argsort(1)  # (n, batch)
    return values.gather(1, shuffle).T.contiguous()


@dataclass(frozen=True)
class OrderedDropoutSampler:
    """Draws (widths, kernels) tensors of shape (B, L) for a batch; column ``i`` = space layer ``i``.

    ``kernels=False`` keeps every superkernel at its full size (the returned kernels tensor is
    then ``None``).  ``block_drop`` is the share of images that run without each removable block
    (``None``: one in the number of width choices of the block's first convolution).

    ``spread``: ``None`` draws every layer's width independently (paper §2.3).  An integer ``k``
    draws one width *level* per image (stratified over the batch) and gives every layer a width
    within ``k`` of its choices from that level (beyond the paper: an image's layers are then
    narrow or wide together, as in the networks the search visits, instead of nearly every image
    holding some near-empty layer; docs/training.md has the measurements).

    ``group_size``: ``None`` draws per image; ``g`` draws one sub-network per run of ``g``
    consecutive images (rows ``0..g-1`` share one, and so on).
    """

    space: SearchSpace
    kernels: bool = True
    sandwich: bool = False
    block_drop: float | None = None
    spread: int | None = None
    group_size: int | None = None
    largest_share: float = 0.0

    def largest(self) -> tuple[list[int], list[int]]:
        """(widths, kernels) of the initial network."""
        return [layer.max_filters for layer in self.space.layers], [layer.max_kernel for layer in self.space.layers]

    def smallest(self, phase: str = "all", floor: float = 0.0) -> tuple[list[int], list[int]]:
        """(widths, kernels) of the smallest sub-network the phase allows."""
        widths = [min(self._widths(i, phase, floor)) for i in range(len(self.space.layers))]
        for group in self.space.removal_groups() if phase == "all" else ():
            for i in group:
                widths[i] = 0
        return widths, [min(layer.kernels) for layer in self.space.layers]

    def _widths(self, i: int, phase: str, floor: float = 0.0) -> tuple[int, ...]:
        """Layer ``i``'s width choices drawn column-wise: a convolution of a removable block is
        removed by the block's own draw, without depth no convolution keeps 0 filters, and no
        non-zero width lies below ``floor`` × the full width."""
        layer = self.space.layers[i]
        widths = layer.widths
        if not (layer.kind == "se" or (layer.block is None and phase == "all")):
            widths = tuple(w for w in widths if w > 0) or widths
        if floor > 0:
            widths = tuple(w for w in widths if w >= floor * layer.max_filters or (w == 0 and phase == "all")) or (
                layer.max_filters,
            )
        return widths

    def sample(
        self, batch: int, generator: torch.Generator, phase: str = "all", *, floor: float = 0.0
    ) -> tuple[Tensor, Tensor | None]:
        """Per-image widths (B, L) and kernels (B, L) or ``None`` for ``batch`` images.

        ``floor`` (progressive shrinking) leaves out non-zero widths below that fraction of
        each layer's full width."""
        if phase not in PHASES:
            raise ValueError(f"unknown ordered-dropout phase {phase!r}; choose one of {PHASES}")
        if self.group_size is None or self.group_size == 1:
            return self._draw(batch, generator, phase, floor)
        widths, kernels = self._draw(-(-batch // self.group_size), generator, phase, floor)  # one row per group
        widths = widths.repeat_interleave(self.group_size, 0)[:batch]
        return widths, None if kernels is None else kernels.repeat_interleave(self.group_size, 0)[:batch]

    def _draw(self, batch: int, generator: torch.Generator, phase: str, floor: float) -> tuple[Tensor, Tensor | None]:
        layers = self.space.layers
        if phase == "full":
            w, k = self.largest()
            return torch.tensor([w]).expand(batch, -1).clone(), torch.tensor([k]).expand(
                batch, -1
            ).clone() if self.kernels else None
        n_smallest = 1 if self.sandwich and batch > 2 else 0
        n_largest = self._largest_rows(batch, n_smallest)
        rows = batch - n_largest - n_smallest
        widths = torch.empty(batch, len(layers), dtype=torch.long)  # (B, L)
        owner, block_of, rates = self._layout
        choices = [self._widths(group[0], phase, floor) for group in self.space.tie_groups()]
        if self.spread is None:
            drawn = stratified_columns(choices, rows, generator)  # (rows, groups)
        else:
            top = max(len(c) for c in choices) - 1
            level = stratified_column(range(top + 1), rows, generator).double() / max(top, 1)  # (rows,) in [0, 1]
            drawn = torch.stack([self._spread_column(options, level, rows, generator) for options in choices], 1)
        widths[batch - rows :] = drawn[:, owner]
        kernels = None
        if self.kernels:
            kernels = torch.empty(batch, len(layers), dtype=torch.long)  # (B, L)
            kernels[batch - rows :] = stratified_columns([layer.kernels for layer in layers], rows, generator)
        if phase == "all" and len(rates):
            gone = _stratified_rows(rates, rows, generator)  # (rows, blocks)
            gone = torch.cat([gone, gone.new_zeros(rows, 1)], 1)  # the last column: no block
            widths[batch - rows :].masked_fill_(gone[:, block_of], 0)  # (rows, L): the layer's block is gone
        if rows < batch:  # rows 0..n_largest-1 the largest, then (sandwich) one row the smallest
            fixed = [self.largest()] * n_largest + [self.smallest(phase, floor)] * n_smallest
            for row, (w, k) in enumerate(fixed):
                widths[row] = torch.as_tensor(w)
                if kernels is not None:
                    kernels[row] = torch.as_tensor(k)
        return widths, kernels

    @functools.cached_property
    def _layout(self) -> tuple[Tensor, Tensor, Tensor]:
        """What every draw needs of the space, computed once: the tie group of every layer (L,),
        the removable block of every layer (L,; the number of blocks for none) and each block's
        removal rate (blocks,)."""
        layers = self.space.layers
        owner = torch.empty(len(layers), dtype=torch.long)
        for g, group in enumerate(self.space.tie_groups()):
            owner[list(group)] = g
        removal = self.space.removal_groups()
        block_of = torch.full((len(layers),), len(removal), dtype=torch.long)
        rates = []
        for b, group in enumerate(removal):
            block_of[list(group)] = b
            first = next(i for i in group if layers[i].kind != "se")
            rates.append(self.block_drop if self.block_drop is not None else 1 / len(layers[first].widths))
        return owner, block_of, torch.tensor(rates, dtype=torch.float64)

    def _spread_column(self, options: Sequence[int], level: Tensor, rows: int, generator: torch.Generator) -> Tensor:
        """A layer's choice at every image's level, moved by up to ``spread`` choices."""
        offset = torch.randint(-self.spread, self.spread + 1, (rows,), generator=generator)
        index = (torch.round(level * (len(options) - 1)).long() + offset).clamp(0, len(options) - 1)
        return torch.as_tensor(options, dtype=torch.long)[index]

    def _largest_rows(self, batch: int, n_smallest: int = 0) -> int:
        """How many of ``batch`` rows train the largest sub-network: ``largest_share`` of them
        (rounded), at least one with the sandwich rule (``n_smallest`` rows for its smallest), and
        at least one row left to draw."""
        top = round(self.largest_share * batch)
        if n_smallest:
            return min(max(top, 1), batch - 1 - n_smallest)
        return min(top, batch - 1)


def _stratified_rows(rates: Tensor, rows: int, generator: torch.Generator) -> Tensor:
    """A (rows, n) boolean tensor: column ``j`` marks ``rates[j] × rows`` distinct random rows (the
    count rounded up or down at random, so the expected share is exactly ``rates[j]``)."""
    exact = rates * rows  # (n,)
    counts = exact.floor() + (torch.rand(len(rates), generator=generator, dtype=torch.float64) < exact - exact.floor())
    rank = torch.rand(len(rates), rows, generator=generator).argsort(1).argsort(1)  # a random order of the rows
    return (rank < counts[:, None]).T


def group_sizes(rows: Tensor, group_size: int | None) -> tuple[int, ...] | None:
    """Sizes of the runs of images of one sub-network among ``rows`` (a process's ascending row
    indices into the global batch, unreadable images left out), for
    :func:`~netadapt.model.layers.grouped_batch_norm`; ``None`` when the sampler draws per image.

    A group left with one image (the others on another process or unreadable) joins the group
    before it (or after it): one image gives no batch statistics worth the name (and none at all
    for a 1×1 map)."""
    if group_size is None or group_size == 1 or len(rows) == 0:
        return None
    sizes = torch.unique_consecutive(rows // group_size, return_counts=True)[1].tolist()
    merged: list[int] = []
    for size in sizes:
        if merged and (size == 1 or merged[-1] == 1):
            merged[-1] += size
        else:
            merged.append(size)
    return tuple(merged)
