"""An E(n)-equivariant graph network over all atom pairs, predicting a molecule's velocity.

``forward(x, t, cond=mask)``: ``x: (B, N, 3 + T)`` positions and scaled one-hot types (see
:mod:`.space`), ``t: (B,)``, ``mask: (B, N)`` real atoms -> ``(B, N, 3 + T)``: the velocity, or with
``prediction="data"`` the clean molecule (updated positions; types as probabilities times
``type_scale``, so a cross-entropy can be taken on them and the usual conversion gives the velocity).
With ``cond_dim = k > 0`` the condition is a float ``(B, N + k)``: the atom mask as 0/1, then k
molecular properties (standardised; a row with NaN is the null condition of classifier-free
guidance), embedded and added to the time embedding. Only the atom slots some molecule of the batch
uses are computed (a batch of small molecules costs what its largest one needs, not N_max^2 pairs).
Messages between every pair of real atoms depend on the atoms' features and their squared distance (now
and at the input; with ``rbf = K > 0`` also K Gaussian radial basis functions of each distance); features
are updated from summed messages, positions move along pair differences weighted by a function of the
message. So rotating, reflecting or translating the input rotates, reflects or leaves unchanged the
position part of the output (translated inputs give the same velocity), the type part is invariant,
and permuting atoms permutes the output. The position part is returned with zero centre of mass over
real atoms; padded atoms get 0. With ``self_condition`` the network also reads an earlier estimate
of the clean molecule (its types, and its pair distances as further edge features: still invariant).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor, nn

from ..errors import UserError
from ..models.conditioning import check_end_time
from ..models.embeddings import make_time_embedding
from .space import NUM_TYPES, remove_com


@dataclass(frozen=True)
class EGNNConfig:
    """Everything that rebuilds an :class:`EGNN`: atom slots, width, depth."""

    max_atoms: int
    num_types: int = NUM_TYPES
    hidden: int = 128
    layers: int = 6
    time_dim: int = 16
    time_embedding: str = "sinusoidal"
    mean_flow: bool = False  # also take the end time r of a jump (--objective meanflow)
    prediction: str = "velocity"  # or "data": positions and type probabilities of the clean molecule
    type_scale: float = 0.25  # the one-hot scale of the data (a data prediction's types sum to it)
    cond_dim: int = 0  # properties to condition on, after the atom mask in the condition
    rbf: int = 0  # Gaussian radial basis functions of each pair distance (0: the squared distance alone)
    rbf_cutoff: float = 8.0  # the last basis function's centre, in the positions' unit (Angstrom for QM9)
    self_condition: bool = False  # also read a previous estimate of the clean molecule (x1_prev)
    name: str = field(default="egnn", init=False)

    def __post_init__(self) -> None:
        if self.max_atoms < 2 or self.hidden < 1 or self.layers < 1 or self.num_types < 1:
            raise UserError(f"EGNN needs max_atoms >= 2, hidden, layers and num_types >= 1; got {self}")
        if self.prediction not in ("velocity", "data"):
            raise UserError(f"the EGNN predicts a velocity or the data, not '{self.prediction}'")
        if self.self_condition and self.prediction != "data":
            raise UserError("self-conditioning feeds the EGNN its own estimate of the clean molecule: it needs "
                            "prediction='data' (--objective data)")

    @property
    def data_shape(self) -> tuple[int, int]:
        return self.max_atoms, 3 + self.num_types

    def to_dict(self) -> dict:
        return asdict(self)


class RadialBasis(nn.Module):
    """``d2: (..., 1)`` squared distances -> ``(..., K)``: Gaussians of the distance centred on 0 .. cutoff."""

    def __init__(self, k: int, cutoff: float) -> None:
        super().__init__()
        self.register_buffer("centres", torch.linspace(0.0, cutoff, k), persistent=False)
        self.gamma = 1.0 / (cutoff / max(k - 1, 1)) ** 2  # one spacing is one standard deviation

    def forward(self, d2: Tensor) -> Tensor:
        return torch.exp(-self.gamma * ((d2 + 1e-8).sqrt() - self.centres.to(d2.dtype)) ** 2)


class EGNNLayer(nn.Module):
    """One round of messages: features and positions, both masked to real atoms."""

    def __init__(self, hidden: int, rbf: RadialBasis | None = None, fixed: int = 1) -> None:
        super().__init__()
        # the edge MLP's first layer on [h_i, h_j, d2_ij (, rbf(d_ij)), fixed_ij], split so no (B, N, N, 2H)
        # tensor is built; `fixed` edge features stay the same through the layers (the input's distances)
        self.rbf = rbf
        k = 0 if rbf is None else len(rbf.centres)
        self.edge_i, self.edge_j = nn.Linear(hidden, hidden), nn.Linear(hidden, hidden, bias=False)
        self.edge_d = nn.Linear(1 + k + fixed, hidden, bias=False)
        self.edge = nn.Sequential(nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU())
        self.gate = nn.Sequential(nn.Linear(hidden, 1), nn.Sigmoid())
        self.node = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.coord = nn.Sequential(nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, 1, bias=False))
        nn.init.xavier_uniform_(self.coord[-1].weight, gain=1e-3)  # positions start almost still

    def forward(self, h: Tensor, pos: Tensor, d0: Tensor, edges: Tensor, atoms: Tensor, norm: Tensor
                ) -> tuple[Tensor, Tensor]:
        """``h: (B, N, H)``, ``pos: (B, N, 3)``, ``d0: (B, N, N, F)`` (the fixed edge features: the input's squared
        distances and their basis functions, and a previous estimate's), ``edges: (B, N, N, 1)``,
        ``atoms: (B, N, 1)``."""
        diff = pos[:, :, None] - pos[:, None]  # (B, N, N, 3): x_i - x_j
        d2 = diff.pow(2).sum(-1, keepdim=True)  # (B, N, N, 1)
        dist = [d2, d0] if self.rbf is None else [d2, self.rbf(d2), d0]
        first = self.edge_i(h)[:, :, None] + self.edge_j(h)[:, None] + self.edge_d(torch.cat(dist, -1))
        m = self.edge(first)  # (B, N, N, H)
        m = m * self.gate(m) * edges  # (B, N, N, H)
        h = (h + self.node(torch.cat([h, m.sum(2) / norm], -1))) * atoms
        step = diff / ((d2 + 1e-8).sqrt() + 1.0) * self.coord(m) * edges  # (B, N, N, 3); eps: finite grad at 0
        pos = (pos + step.sum(2) / norm) * atoms
        return h, pos


class EGNN(nn.Module):
    def __init__(self, config: EGNNConfig) -> None:
        super().__init__()
        self.config = config
        hid = config.hidden
        self.time_embed = make_time_embedding(config.time_embedding, config.time_dim)
        self.gap = None
        if config.mean_flow:  # the gap r - t of a jump; starts at zero, so u(x, t, r) = v(x, t) at first
            td = config.time_dim
            self.gap = nn.Sequential(nn.Linear(td, td), nn.SiLU(), nn.Linear(td, td))
            nn.init.zeros_(self.gap[-1].weight)
            nn.init.zeros_(self.gap[-1].bias)
        self.prop = None
        if config.cond_dim:  # properties -> an offset of the time embedding; a learned one for the null row
            td = config.time_dim
            self.prop = nn.Sequential(nn.Linear(config.cond_dim, td), nn.SiLU(), nn.Linear(td, td))
            self.null_prop = nn.Parameter(torch.zeros(td))
        sc = 2 if config.self_condition else 1  # the input's distances, and those of a previous estimate
        self.embed = nn.Linear(sc * config.num_types + config.time_dim, hid)
        self.rbf = RadialBasis(config.rbf, config.rbf_cutoff) if config.rbf else None
        fixed = sc * (1 + config.rbf)
        self.layers = nn.ModuleList(EGNNLayer(hid, self.rbf, fixed) for _ in range(config.layers))
        self.out = nn.Sequential(nn.Linear(hid + config.time_dim, hid), nn.SiLU(), nn.Linear(hid, config.num_types))

    def split_condition(self, cond: Tensor | None, b: int, n: int, device: torch.device
                        ) -> tuple[Tensor, Tensor | None]:
        """The atom mask ``(B, N)`` and the properties ``(B, k)`` (None without ``cond_dim``) of a condition."""
        k = self.config.cond_dim
        if k:
            if cond is None or cond.dtype == torch.bool or cond.shape != (b, n + k):
                got = "none" if cond is None else f"{cond.dtype} {tuple(cond.shape)}"
                raise UserError(f"this EGNN is conditioned on {k} properties: its condition is float ({b}, {n} + {k}), "
                                f"the atom mask as 0/1 then the properties (NaN: none); got {got}")
            return cond[:, :n] > 0.5, cond[:, n:]
        mask = torch.ones(b, n, dtype=torch.bool, device=device) if cond is None else cond
        if mask.shape != (b, n) or mask.dtype != torch.bool:
            raise UserError(f"the EGNN's condition is the atom mask, bool ({b}, {n}); got {mask.dtype} "
                            f"{tuple(mask.shape)}")
        return mask, None

    def check_training_condition(self, cond: Tensor, data: Tensor) -> None:
        """The training condition of ``data: (M, N, 3 + T)``: the atom mask, bool ``(M, N)``, or with properties
        float ``(M, N + k)``."""
        want = (data.shape[0], data.shape[1] + self.config.cond_dim)
        if self.config.cond_dim and (cond.shape != want or not cond.is_floating_point()):
            raise UserError(f"the EGNN is conditioned on atom masks and {self.config.cond_dim} properties, float "
                            f"{want}; got {cond.dtype} {tuple(cond.shape)}")
        if not self.config.cond_dim and (cond.shape != data.shape[:2] or cond.dtype != torch.bool):
            raise UserError(f"the EGNN is conditioned on atom masks, bool {tuple(data.shape[:2])}; got {cond.dtype} "
                            f"{tuple(cond.shape)}")

    def forward(self, x: Tensor, t: Tensor, cond: Tensor | None = None, r: Tensor | None = None,
                x1_prev: Tensor | None = None) -> Tensor:
        """``x1_prev: (B, N, 3 + T)``, with ``self_condition``: an earlier estimate of the clean molecule (this
        network's own output, see :mod:`.self_conditioning`); None reads as zeros (no estimate yet)."""
        b, n, f = x.shape if x.ndim == 3 else (None, None, None)
        if (n, f) != self.config.data_shape:
            raise UserError(f"the EGNN expects molecules (B, {self.config.max_atoms}, {3 + self.config.num_types}), "
                            f"got {tuple(x.shape)}")
        if x1_prev is not None and (not self.config.self_condition or x1_prev.shape != x.shape):
            raise UserError(f"x1_prev is an estimate of the clean molecules {tuple(x.shape)} for a self-conditioned "
                            f"EGNN; got {tuple(x1_prev.shape)} (self_condition={self.config.self_condition})")
        mask, props = self.split_condition(cond, b, n, x.device)
        if self.config.self_condition and x1_prev is None:
            x1_prev = torch.zeros_like(x)
        used = mask.any(0)  # (N,) slots some molecule of the batch fills
        if bool(used.all()):
            return self._forward(x, t, mask, r, props, x1_prev)
        out = torch.zeros_like(x)
        out[:, used] = self._forward(x[:, used], t, mask[:, used], r, props,
                                     None if x1_prev is None else x1_prev[:, used])
        return out

    def _distances(self, pos: Tensor) -> Tensor:
        """``pos: (B, n, 3)`` -> ``(B, n, n, 1 + K)``: squared pair distances and their basis functions."""
        d2 = (pos[:, :, None] - pos[:, None]).pow(2).sum(-1, keepdim=True)
        return d2 if self.rbf is None else torch.cat([d2, self.rbf(d2)], -1)

    def _forward(self, x: Tensor, t: Tensor, mask: Tensor, r: Tensor | None, props: Tensor | None,
                 x1_prev: Tensor | None) -> Tensor:
        """``x: (B, n, 3 + T)`` on the slots in use, ``mask: (B, n)``, ``props: (B, k)`` or None,
        ``x1_prev: (B, n, 3 + T)`` or None."""
        n = x.shape[1]
        atoms = mask.to(x.dtype)[..., None]  # (B, n, 1)
        edges = (atoms[:, :, None] * atoms[:, None]) * (1 - torch.eye(n, device=x.device, dtype=x.dtype))[..., None]
        norm = (atoms.sum(1, keepdim=True) - 1).clamp(min=1)  # (B, 1, 1): neighbours per atom
        pos, types = x[..., :3] * atoms, x[..., 3:] * atoms
        temb = self.time_embed(t)  # (B, time_dim)
        r = check_end_time(r, t, self.gap is not None)
        if self.gap is not None:
            temb = temb + self.gap(self.time_embed(r - t if r is not None else torch.zeros_like(t)))
        if self.prop is not None:
            null = torch.isnan(props).any(1, keepdim=True)  # (B, 1)
            temb = temb + torch.where(null, self.null_prop.to(temb.dtype), self.prop(torch.nan_to_num(props)))
        temb = temb[:, None].expand(-1, n, -1)  # (B, n, time_dim)
        d0 = self._distances(pos)  # (B, n, n, 1 + K)
        if x1_prev is not None:  # the estimate enters through its types and its (invariant) distances
            types = torch.cat([types, x1_prev[..., 3:] * atoms], -1)
            d0 = torch.cat([d0, self._distances(x1_prev[..., :3] * atoms)], -1)  # (B, n, n, 2 (1 + K))
        h = self.embed(torch.cat([types, temb], -1)) * atoms
        new = pos
        for layer in self.layers:
            h, new = layer(h, new, d0, edges, atoms, norm)
        v_types = self.out(torch.cat([h, temb], -1))
        if self.config.prediction == "data":  # the clean molecule: where the atoms end up, and their types
            return remove_com(torch.cat([new, v_types.softmax(-1) * self.config.type_scale], -1), mask)
        return remove_com(torch.cat([new - pos, v_types], -1), mask)


__all__ = ["EGNN", "EGNNConfig", "EGNNLayer", "RadialBasis"]
