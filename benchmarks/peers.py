"""noise2data beside Meta's flow_matching and TorchCFM on the same 2-D tasks.

Each library trains the same network (noise2data's residual MLP, 256 x 4, same initial weights)
on the same standardised data with the same batch, number of steps, optimiser (AdamW, lr 2e-3,
cosine decay with 100 warm-up steps) and probability path (conditional OT, independent coupling):
noise2data through its own ``train`` (which also keeps an EMA of the weights; both the EMA and the
raw weights are scored), the peers through the training loop their documentation shows, built
on their path / conditional-flow-matcher objects. Sampling uses each library's own ODE solver
(flow_matching's ODESolver; TorchCFM has none of its own, and its examples integrate with
torchdiffeq, which is what is used here): Euler at NFE 1, the midpoint rule at NFE 2..32, and
dopri5 (rtol = atol = 1e-5). NFE is counted at the network, not taken from the solver's claims.

Quality is the exact W2 (POT) between 4000 samples and 4000 fresh data points, the mean over R
independent pairs, beside the floor (the same with fresh data for samples). The log-likelihood
of 2000 held-out points is computed where the library supports it (noise2data, flow_matching:
exact divergence, midpoint rule with 64 steps), beside the exact value where it is known.

    bash benchmarks/setup_peers.sh                          # once: a separate venv for the peers
    benchmarks/.peers-venv/bin/python benchmarks/peers.py   # prints the table, writes JSON
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import platform
import statistics
import time
from pathlib import Path

import torch
import torchdiffeq
from flow_matching.path import AffineProbPath
from flow_matching.path.scheduler import CondOTScheduler
from flow_matching.solver import ODESolver
from flow_matching.utils import ModelWrapper
from torchcfm.conditional_flow_matching import ConditionalFlowMatcher

from noise2data.data import Standardizer, load_data, true_log_prob
from noise2data.fields import CountingField, model_field
from noise2data.likelihood import log_likelihood
from noise2data.metrics import w2_exact
from noise2data.models import MLP, MLPConfig
from noise2data.paths import make_path
from noise2data.samplers import ODE_SOLVERS, uniform_grid
from noise2data.training import TrainConfig, train

NFES = (1, 2, 4, 8, 16, 32)


class Counted(torch.nn.Module):
    """model(x, t) with t broadcast to (B,), counting calls."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model, self.nfe = model, 0

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.nfe += 1
        return self.model(x, t.reshape(-1).expand(x.shape[0]).to(x))


class FMWrapper(ModelWrapper):
    def forward(self, x: torch.Tensor, t: torch.Tensor, **extras) -> torch.Tensor:
        return self.model(x, t)


def hand_loop(model: torch.nn.Module, loss_fn, data: torch.Tensor, cfg: TrainConfig, seed: int) -> float:
    """The loop a peer's docs show, with noise2data's optimiser settings; returns steps/s."""
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    start = time.perf_counter()
    for step in range(1, cfg.steps + 1):
        for group in opt.param_groups:
            group["lr"] = cfg.lr_at(step)
        x1 = data[torch.randint(0, len(data), (cfg.batch_size,), generator=g)]
        loss = loss_fn(model, x1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
    return cfg.steps / (time.perf_counter() - start)


def fm_loss(path: AffineProbPath):
    def loss(model, x1):
        x0 = torch.randn_like(x1)
        t = torch.rand(len(x1))
        s = path.sample(t=t, x_0=x0, x_1=x1)
        return (model(s.x_t, s.t) - s.dx_t).pow(2).mean()
    return loss


def cfm_loss(matcher: ConditionalFlowMatcher):
    def loss(model, x1):
        x0 = torch.randn_like(x1)
        t, xt, ut = matcher.sample_location_and_conditional_flow(x0, x1)
        return (model(xt, t) - ut).pow(2).mean()
    return loss


def sample_n2d(model, x0: torch.Tensor, nfe: int | None) -> tuple[torch.Tensor, int]:
    field = CountingField(model_field(model, make_path("condot"), "velocity"))
    if nfe is None:
        return ODE_SOLVERS["dopri5"](field, x0, uniform_grid(1)).x, field.nfe
    solver, steps = ("euler", 1) if nfe == 1 else ("midpoint", nfe // 2)
    return ODE_SOLVERS[solver](field, x0, uniform_grid(steps)).x, field.nfe


def sample_fm(model, x0: torch.Tensor, nfe: int | None) -> tuple[torch.Tensor, int]:
    c = Counted(model)
    solver = ODESolver(velocity_model=FMWrapper(c))
    if nfe is None:
        x = solver.sample(x_init=x0, step_size=None, method="dopri5", atol=1e-5, rtol=1e-5)
    else:
        method, steps = ("euler", 1) if nfe == 1 else ("midpoint", nfe // 2)
        x = solver.sample(x_init=x0, step_size=1.0 / steps, method=method)
    return x, c.nfe


def sample_cfm(model, x0: torch.Tensor, nfe: int | None) -> tuple[torch.Tensor, int]:
    c = Counted(model)
    f = lambda t, x: c(x, t)  # noqa: E731 - torchdiffeq's (t, x) order
    span = torch.tensor([0.0, 1.0])
    if nfe is None:
        x = torchdiffeq.odeint(f, x0, span, method="dopri5", atol=1e-5, rtol=1e-5)[-1]
    else:
        method, steps = ("euler", 1) if nfe == 1 else ("midpoint", nfe // 2)
        x = torchdiffeq.odeint(f, x0, span, method=method, options={"step_size": 1.0 / steps})[-1]
    return x, c.nfe


def nll_n2d(model, z: torch.Tensor) -> torch.Tensor:
    return -log_likelihood(model_field(model, make_path("condot"), "velocity"), z, make_path("condot"),
                           solver="midpoint", steps=64).log_prob


def nll_fm(model, z: torch.Tensor) -> torch.Tensor:
    solver = ODESolver(velocity_model=FMWrapper(Counted(model)))
    log_p0 = lambda x: -0.5 * x.pow(2).sum(1) - x.shape[1] * 0.5 * math.log(2 * math.pi)  # noqa: E731
    _, logp = solver.compute_likelihood(x_1=z, log_p0=log_p0, step_size=1 / 64, method="midpoint",
                                        exact_divergence=True)
    return -logp


def run_task(name: str, args: argparse.Namespace) -> dict:
    data = load_data(name, n=100_000, seed=args.seed)
    stats = Standardizer.fit(data)
    z = stats.forward(data)
    log_det = float(stats.std.double().log().sum())
    cfg = TrainConfig(steps=args.steps, batch_size=args.batch_size, lr=2e-3, device="cpu", seed=args.seed,
                      log_every=args.steps)
    torch.manual_seed(args.seed)
    init = MLP(MLPConfig(data_shape=(2,), hidden=args.hidden, depth=args.depth))
    models, speed = {}, {}

    m = copy.deepcopy(init)
    res = train(m, make_path("condot"), z, cfg, progress=False)
    models["noise2data (EMA)"], models["noise2data (raw)"] = res.ema.eval(), m.eval()
    speed["noise2data (EMA)"] = speed["noise2data (raw)"] = res.steps_per_sec
    m = copy.deepcopy(init)
    speed["flow_matching"] = hand_loop(m, fm_loss(AffineProbPath(scheduler=CondOTScheduler())), z, cfg, args.seed)
    models["flow_matching"] = m.eval()
    m = copy.deepcopy(init)
    speed["torchcfm"] = hand_loop(m, cfm_loss(ConditionalFlowMatcher(sigma=0.0)), z, cfg, args.seed)
    models["torchcfm"] = m.eval()
    samplers = {"noise2data (EMA)": sample_n2d, "noise2data (raw)": sample_n2d, "flow_matching": sample_fm,
                "torchcfm": sample_cfm}
    nlls = {"noise2data (EMA)": nll_n2d, "noise2data (raw)": nll_n2d, "flow_matching": nll_fm}

    n, R = args.n, args.refs
    refs = [load_data(name, n=n, seed=1000 + i) for i in range(R)]
    floor = statistics.mean(w2_exact(load_data(name, n=n, seed=2000 + i), refs[i]) for i in range(R))
    held_out = load_data(name, n=args.nll_n, seed=3000)
    true = true_log_prob(name, held_out)
    rows = {}
    for lib, model in models.items():
        row = {"ms_per_step": 1000 / speed[lib], "w2": {}, "nfe_used": {}}
        for nfe in (*NFES, None):
            vals, used = [], 0
            for i in range(R):
                x0 = torch.randn(n, 2, generator=torch.Generator().manual_seed(4000 + i))
                with torch.no_grad():
                    x, used = samplers[lib](model, x0, nfe)
                vals.append(w2_exact(stats.inverse(x), refs[i]))
            key = str(nfe) if nfe else "dopri5"
            if nfe is not None and used != nfe:
                print(f"warning: {lib} used {used} evaluations for a budget of {nfe}")
            row["w2"][key], row["nfe_used"][key] = statistics.mean(vals), used
        if lib in nlls:
            t0 = time.perf_counter()
            row["nll"] = float(nlls[lib](model, stats.forward(held_out)).mean()) + log_det
            row["nll_seconds"] = time.perf_counter() - t0
        rows[lib] = row
    return {"floor": floor, "true_nll": float(-true.mean()) if true is not None else None, "libraries": rows}


def print_table(name: str, res: dict, args: argparse.Namespace) -> None:
    cols = [str(k) for k in NFES] + ["dopri5"]
    print(f"\n{name}: {args.steps} steps, batch {args.batch_size}, MLP {args.hidden}x{args.depth}; "
          f"W2 floor {res['floor']:.4f}" + (f"; exact NLL {res['true_nll']:.4f}" if res["true_nll"] else ""))
    print(f"{'library':<18} {'ms/step':>8} " + " ".join(f"{'NFE ' + c if c != 'dopri5' else c:>9}" for c in cols)
          + f" {'dopri5 NFE':>10} {'NLL (nats)':>11} {'NLL s':>6}")
    for lib, row in res["libraries"].items():
        nll = f"{row['nll']:11.4f} {row['nll_seconds']:6.1f}" if "nll" in row else f"{'-':>11} {'-':>6}"
        print(f"{lib:<18} {row['ms_per_step']:8.2f} " + " ".join(f"{row['w2'][c]:9.4f}" for c in cols)
              + f" {row['nfe_used']['dopri5']:10d} {nll}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", default="checkerboard,moons")
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--n", type=int, default=4000)
    p.add_argument("--refs", type=int, default=2)
    p.add_argument("--nll-n", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default="benchmarks/results/peers.json")
    p.add_argument("--show", help="print the tables of a results JSON written earlier, and stop")
    args = p.parse_args()
    if args.show:
        saved = json.loads(Path(args.show).read_text())
        for name, res in saved["tasks"].items():
            print_table(name, res, argparse.Namespace(**saved["args"]))
        return
    torch.set_num_threads(args.threads)
    results = {"args": vars(args), "torch": torch.__version__, "machine": platform.processor() or platform.machine(),
               "tasks": {}}
    for name in args.tasks.split(","):
        results["tasks"][name] = run_task(name, args)
        print_table(name, results["tasks"][name], args)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
