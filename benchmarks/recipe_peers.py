"""The peers of ``benchmarks/recipe.py suite``, trained for the seconds noise2data took, one after another.

Each peer is trained the way its own documentation shows, on the same standardised data, batch 512,
same threads, until the wall-clock budget is spent, and sampled with its own solver at 8 NFE with the
midpoint rule:

    flow_matching  Meta's 2-D notebook recipe: an MLP on [x, t] with 4 hidden layers of 512 and Swish
                   (SiLU) activations, Adam lr 1e-3, AffineProbPath(CondOTScheduler); ODESolver midpoint
    torchcfm CFM   its tutorial MLP (torchcfm.models.models.MLP, w=64, SELU), Adam lr 1e-3,
                   ConditionalFlowMatcher(sigma=0); torchdiffeq midpoint (its examples integrate with it)
    torchcfm OT    the same with ExactOptimalTransportConditionalFlowMatcher(sigma=0) (POT's exact OT)

Needs the peers' environment: ``bash benchmarks/setup_peers.sh``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch import Tensor, nn

BATCH = 512


class NotebookMLP(nn.Module):
    """The architecture of flow_matching's 2-D notebook: [x, t] -> 4 x (Linear 512, SiLU) -> Linear."""

    def __init__(self, dim: int, hidden: int = 512) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Linear(dim + 1, hidden), nn.SiLU()]
        for _ in range(3):
            layers += [nn.Linear(hidden, hidden), nn.SiLU()]
        self.net = nn.Sequential(*layers, nn.Linear(hidden, dim))

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        t = t.reshape(-1, 1).expand(x.shape[0], 1).to(x)
        return self.net(torch.cat([x, t], 1))


def _train_for(seconds: float, model: nn.Module, loss_fn: Callable[[Tensor], Tensor], data: Tensor,
               seed: int) -> tuple[int, float]:
    """Adam lr 1e-3 on batches of 512 until ``seconds`` have passed; returns (steps, seconds)."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    start, steps = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        x1 = data[torch.randint(0, len(data), (BATCH,), generator=g)]
        loss = loss_fn(x1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        steps += 1
    return steps, time.perf_counter() - start


class Counted(nn.Module):
    def __init__(self, f: Callable[[Tensor, Tensor], Tensor]) -> None:
        super().__init__()
        self.f, self.nfe = f, 0

    def forward(self, x: Tensor, t: Tensor, **extras) -> Tensor:
        self.nfe += 1
        return self.f(x, t)


def train_flow_matching(data: Tensor, seconds: float, seed: int) -> tuple[Callable[[Tensor], tuple[Tensor, int]], dict]:
    from flow_matching.path import AffineProbPath
    from flow_matching.path.scheduler import CondOTScheduler
    from flow_matching.solver import ODESolver
    from flow_matching.utils import ModelWrapper

    torch.manual_seed(seed)
    model = NotebookMLP(data.shape[1])
    path = AffineProbPath(scheduler=CondOTScheduler())

    def loss(x1: Tensor) -> Tensor:
        x0 = torch.randn_like(x1)
        s = path.sample(t=torch.rand(len(x1)), x_0=x0, x_1=x1)
        return (model(s.x_t, s.t) - s.dx_t).pow(2).mean()

    steps, secs = _train_for(seconds, model, loss, data, seed)
    model.eval()

    class Wrapped(ModelWrapper):
        def forward(self, x: Tensor, t: Tensor, **extras) -> Tensor:
            return self.model(x, t)

    def sample(x0: Tensor) -> tuple[Tensor, int]:
        c = Counted(model)
        with torch.no_grad():
            x = ODESolver(velocity_model=Wrapped(c)).sample(x_init=x0, step_size=1 / 4, method="midpoint")
        return x, c.nfe

    return sample, {"steps": steps, "seconds": secs}


def train_torchcfm(data: Tensor, seconds: float, seed: int, ot: bool) -> tuple[Callable, dict]:
    import torchdiffeq
    from torchcfm.conditional_flow_matching import (
        ConditionalFlowMatcher,
        ExactOptimalTransportConditionalFlowMatcher,
    )
    from torchcfm.models.models import MLP

    torch.manual_seed(seed)
    model = MLP(dim=data.shape[1], w=64, time_varying=True)
    matcher = ExactOptimalTransportConditionalFlowMatcher(sigma=0.0) if ot else ConditionalFlowMatcher(sigma=0.0)

    def loss(x1: Tensor) -> Tensor:
        t, xt, ut = matcher.sample_location_and_conditional_flow(torch.randn_like(x1), x1)
        return (model(torch.cat([xt, t[:, None]], 1)) - ut).pow(2).mean()

    steps, secs = _train_for(seconds, model, loss, data, seed)
    model.eval()

    def sample(x0: Tensor) -> tuple[Tensor, int]:
        c = Counted(lambda x, t: model(torch.cat([x, t.reshape(1, 1).expand(len(x), 1)], 1)))
        with torch.no_grad():
            x = torchdiffeq.odeint(lambda t, x: c(x, t), x0, torch.tensor([0.0, 1.0]), method="midpoint",
                                   options={"step_size": 1 / 4})[-1]
        return x, c.nfe

    return sample, {"steps": steps, "seconds": secs}


PEERS = {
    "flow_matching": lambda d, s, seed: train_flow_matching(d, s, seed),
    "torchcfm CFM": lambda d, s, seed: train_torchcfm(d, s, seed, ot=False),
    "torchcfm OT-CFM": lambda d, s, seed: train_torchcfm(d, s, seed, ot=True),
}
