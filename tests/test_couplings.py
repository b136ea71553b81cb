"""Couplings: minibatch OT is a permutation of the noise, and the optimal one."""

from __future__ import annotations

import itertools

import pytest
import torch

from noise2data.couplings import get_coupling, minibatch_ot, ot_assignment
from noise2data.errors import UserError


def _cost(x0, x1):
    return (x0 - x1).flatten(1).pow(2).sum().item()


def test_ot_is_optimal_against_brute_force(gen):
    x0, x1 = torch.randn(6, 2, generator=gen), torch.randn(6, 2, generator=gen)
    best = min(_cost(x0[list(p)], x1) for p in itertools.permutations(range(6)))
    assert abs(_cost(minibatch_ot(x0, x1), x1) - best) < 1e-5


@pytest.mark.parametrize("shape", [(64, 2), (16, 3, 4, 4)])
def test_ot_permutes_and_shortens(shape, gen):
    x0, x1 = torch.randn(shape, generator=gen), torch.randn(shape, generator=gen) + 3
    perm = ot_assignment(x0, x1)
    assert sorted(perm.tolist()) == list(range(shape[0]))  # a permutation: the noise law is kept
    assert _cost(x0[perm], x1) < _cost(x0, x1)
    assert get_coupling("independent")(x0, x1) is x0
    with pytest.raises(UserError, match="unknown coupling"):
        get_coupling("sinkhorn")


def test_blocked_ot_is_a_near_optimal_permutation(gen):
    from noise2data.couplings import block_assignment

    x1 = torch.cat([torch.randn(256, 2, generator=gen) * 0.3 + 2, torch.randn(256, 2, generator=gen) * 0.3 - 2])
    x0 = torch.randn(512, 2, generator=gen)
    exact, indep = _cost(minibatch_ot(x0, x1), x1), _cost(x0, x1)
    for block in (None, 32, 128):  # None: the default, 64
        perm = block_assignment(x0, x1, block=block)
        assert sorted(perm.tolist()) == list(range(512))
        blocked = _cost(x0[perm], x1)
        assert exact <= blocked + 1e-6 and blocked < 1.15 * exact < indep, block
        assert torch.equal(block_assignment(x0, x1, block=block), perm)  # deterministic: resume stays exact
    odd = block_assignment(x0[:301], x1[:301], block=40)  # uneven halves at every level
    assert sorted(odd.tolist()) == list(range(301))
    small = torch.randn(60, 2, generator=gen)  # one block: the exact assignment
    torch.testing.assert_close(get_coupling("ot-blocks")(small, x1[:60]), minibatch_ot(small, x1[:60]))


def test_the_block_size_is_part_of_the_coupling_name(gen):
    from noise2data.couplings import block_assignment, is_ot

    x1, x0 = torch.randn(300, 2, generator=gen) * 2, torch.randn(300, 2, generator=gen)
    for block in (16, 100):
        torch.testing.assert_close(get_coupling(f"ot-blocks:{block}")(x0, x1), x0[block_assignment(x0, x1, block)])
    assert not torch.equal(get_coupling("ot-blocks:16")(x0, x1), get_coupling("ot-blocks:100")(x0, x1))
    torch.testing.assert_close(get_coupling("ot-blocks:300")(x0, x1), minibatch_ot(x0, x1))  # one block: exact
    for bad in ("ot-blocks:1", "ot-blocks:x", "ot-blocks:-4", "ot:64"):
        with pytest.raises(UserError, match="block size|unknown coupling"):
            get_coupling(bad)
    assert [is_ot(n) for n in ("ot", "ot-blocks", "ot-blocks:32", "independent")] == [True, True, True, False]


@pytest.mark.parametrize("name", ["ot", "ot-blocks"])
def test_ot_never_pairs_across_classes(name, gen):
    """Within-class OT: each class's data rows get as many noise rows as it has, and the pairing is
    the optimal one inside the class (checked by brute force on a tiny batch)."""
    labels = torch.tensor([0, 1, 0, 1, 1, 2, 0])
    x1 = torch.randn(7, 2, generator=gen) + 3 * labels[:, None].float()
    x0 = torch.randn(7, 2, generator=gen)
    y = get_coupling(name)(x0, x1, labels)
    rows = [sorted(x0.tolist()).index(v) for v in sorted(y.tolist())]
    assert len(set(rows)) == 7  # still a permutation of the noise
    from noise2data.couplings import _within_groups

    perm = _within_groups(ot_assignment, x0, x1, labels)
    start = 0
    for g in (0, 1, 2):
        idx = (labels == g).nonzero().squeeze(1)
        mine = perm[idx]
        assert set(mine.tolist()) == set(range(start, start + len(idx)))  # the class's own share of noise
        best = min(_cost(x0[list(p)], x1[idx]) for p in itertools.permutations(range(start, start + len(idx))))
        assert abs(_cost(x0[mine], x1[idx]) - best) < 1e-5
        start += len(idx)
    with pytest.raises(UserError, match="vector conditions are not grouped"):
        get_coupling(name)(x0, x1, torch.randn(7, 3))


def test_vector_conditions_are_grouped_by_value_or_by_kmeans(gen):
    """Few distinct condition rows: one group per value. Many: k-means buckets that recover well
    separated clusters exactly, the same on every call (resume, every process)."""
    from noise2data.couplings import condition_groups

    labels = torch.tensor([2, 0, 2, 1])
    assert torch.equal(condition_groups(labels), labels)
    few = torch.tensor([[0.5, 1.0], [0.0, 0.0], [0.5, 1.0], [0.0, 0.0]])
    g = condition_groups(few)
    assert g[0] == g[2] and g[1] == g[3] and g[0] != g[1]
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    truth = torch.randint(0, 3, (600,), generator=gen)
    y = centres[truth] + 0.3 * torch.randn(600, 2, generator=gen)
    g = condition_groups(y, k=3)
    for c in range(3):  # each cluster lands in one bucket, a bucket of its own
        assert len(torch.unique(g[truth == c])) == 1
    assert len(torch.unique(g)) == 3
    assert torch.equal(g, condition_groups(y, k=3))
    x0, x1 = torch.randn(600, 2, generator=gen), y + torch.randn(600, 2, generator=gen)
    paired = get_coupling("ot")(x0, x1, g)  # OT within buckets: still a permutation of the noise
    assert torch.equal(paired.sort(0).values, x0.sort(0).values)
