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
