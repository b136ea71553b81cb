"""Batches of molecules of one size band, so the EGNN computes on real atoms, not padding.

The EGNN's cost grows with the square of the atom slots a batch uses, and a batch drawn at random
from QM9 almost always holds one molecule of 25+ atoms, so every molecule is padded to ~29 slots
(about 2.5x the pairs of its own size on average). :class:`SizeBands` splits the training set into
``bands`` groups of consecutive sizes with about equal numbers of molecules; a batch first draws one
molecule uniformly (which picks its band, so a band is chosen in proportion to its population), then
draws the whole batch uniformly, with replacement, from that band. Every molecule is therefore drawn
with the same probability as in uniform batches; only which molecules share a batch changes. The draws
come from the training generator, so a resumed run draws the same batches.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import UserError


class SizeBands:
    """Size bands of a training set whose molecules have ``sizes: (M,)`` atoms."""

    def __init__(self, sizes: Tensor, bands: int) -> None:
        if bands < 1:
            raise UserError(f"--size-bands must be >= 1 (1 = batches drawn from the whole set), got {bands}")
        sizes = sizes.long().cpu()
        self.order = torch.argsort(sizes, stable=True)  # (M,) molecules by size
        sorted_sizes = sizes[self.order]
        values = sorted_sizes.unique()
        # cut after the size at which the running count passes k/bands of the set; a size is never split
        counts = torch.stack([(sorted_sizes <= v).sum() for v in values])  # (S,) molecules of size <= v
        targets = torch.arange(1, bands + 1) * len(sizes) / bands
        ends = sorted({int(counts[min(int(torch.searchsorted(counts, tgt.ceil().long())), len(values) - 1)])
                       for tgt in targets})
        self.starts = torch.tensor([0, *ends[:-1]])  # (K,) first position of each band in ``order``
        self.ends = torch.tensor(ends)  # (K,) one past its last
        self.band_of = torch.empty(len(sizes), dtype=torch.long)  # (M,) band of each molecule
        for k, (a, b) in enumerate(zip(self.starts.tolist(), self.ends.tolist(), strict=True)):
            self.band_of[self.order[a:b]] = k
        self.min_size = sorted_sizes[self.starts]  # (K,) smallest and largest size in each band
        self.max_size = sorted_sizes[self.ends - 1]

    def __len__(self) -> int:
        return len(self.ends)

    def __call__(self, batch_size: int, generator: torch.Generator, device: torch.device | str = "cpu") -> Tensor:
        """Indices ``(batch_size,)`` of one batch, all in the band of one molecule drawn uniformly."""
        first = torch.randint(0, len(self.band_of), (1,), generator=generator, device=device).cpu()
        k = int(self.band_of[first])
        a, b = int(self.starts[k]), int(self.ends[k])
        pos = torch.randint(a, b, (batch_size,), generator=generator, device=device).cpu()
        return self.order[pos].to(device)

    def describe(self) -> str:
        """The bands' atom counts, e.g. ``3-12, 13-16, 17-29``."""
        return ", ".join(f"{a}-{b}" for a, b in zip(self.min_size.tolist(), self.max_size.tolist(), strict=True))
