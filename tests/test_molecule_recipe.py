"""The molecule training recipe: size-banded batches, the per-atom loss with cross-entropy on types,
noise aligned to each molecule (Hungarian + Kabsch), the EGNN's data prediction, Beta(2, 1) times."""

from __future__ import annotations

import itertools
import json
import math

import pytest
import torch

from noise2data.cli import main
from noise2data.errors import UserError
from noise2data.losses import TimeDistribution
from noise2data.molecules.alignment import align_noise, kabsch, permute_to, rotate_to, squared_distance
from noise2data.molecules.batches import SizeBands
from noise2data.molecules.egnn import EGNN, EGNNConfig
from noise2data.molecules.loss import TYPE_WEIGHT, atom_weight, molecule_loss, parse_position_weight
from noise2data.molecules.space import NUM_TYPES, remove_com, sample_prior, size_mask
from noise2data.paths import make_path
from noise2data.paths.conversion import convert_prediction
from noise2data.run import load_run


def _molecules(sizes: list[int], n_max: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random molecules ``(B, n_max, 3 + T)`` with one-hot types x 0.25, and their mask."""
    g = torch.Generator().manual_seed(seed)
    mask = size_mask(torch.tensor(sizes), n_max)
    pos = 1.5 * torch.randn(len(sizes), n_max, 3, generator=g, dtype=torch.float64)
    types = torch.randint(0, NUM_TYPES, (len(sizes), n_max), generator=g)
    onehot = torch.nn.functional.one_hot(types, NUM_TYPES).double() * 0.25
    return remove_com(torch.cat([pos, onehot], -1), mask), mask


def test_alignment_moves_only_real_atoms_keeps_the_centre_and_never_lengthens_the_path():
    x1, mask = _molecules([7, 4, 9, 2], 9)
    x0 = sample_prior(mask, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    out = align_noise(x0, x1, mask)
    assert (out[~mask] == 0).all()  # padding stays padding
    assert out[..., :3].sum(1).abs().max() < 1e-10  # centre of mass 0
    assert (squared_distance(out, x1) <= squared_distance(x0, x1) + 1e-9).all()
    assert (squared_distance(out, x1) < squared_distance(x0, x1) - 1e-3).any()  # it does something
    for b in range(4):  # the same atoms (norms and type noise) in another order and orientation
        n = int(mask[b].sum())
        before = torch.cat([x0[b, :n, :3].norm(dim=-1, keepdim=True), x0[b, :n, 3:]], -1)
        after = torch.cat([out[b, :n, :3].norm(dim=-1, keepdim=True), out[b, :n, 3:]], -1)
        assert torch.allclose(before[before[:, 1].argsort()], after[after[:, 1].argsort()], atol=1e-10)


def test_the_permutation_step_is_the_optimum_found_by_brute_force():
    x1, mask = _molecules([6], 6, seed=1)
    x0 = sample_prior(mask, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    best = min(float(((x0[0, list(p), :3] - x1[0, :, :3]) ** 2).sum()) for p in itertools.permutations(range(6)))
    assert float(squared_distance(permute_to(x0, x1, mask), x1)) == pytest.approx(best, rel=1e-12)


def test_kabsch_finds_the_best_proper_rotation():
    g = torch.Generator().manual_seed(2)
    p = torch.randn(1, 8, 3, generator=g, dtype=torch.float64)
    q0, _ = torch.linalg.qr(torch.randn(3, 3, generator=g, dtype=torch.float64))
    q0 = q0 * torch.sign(torch.linalg.det(q0))  # a proper rotation
    target = p @ q0.T + 0.05 * torch.randn(1, 8, 3, generator=g, dtype=torch.float64)
    rot = kabsch(p, target)[0]
    assert torch.linalg.det(rot) == pytest.approx(1.0) and torch.allclose(rot @ rot.T, torch.eye(3, dtype=rot.dtype))
    assert torch.allclose(rot, q0, atol=0.05)
    best = float(((p @ rot.T - target) ** 2).sum())
    for _ in range(200):  # no other rotation does better
        q, _ = torch.linalg.qr(torch.randn(3, 3, generator=g, dtype=torch.float64))
        q = q * torch.sign(torch.linalg.det(q))
        assert float(((p @ q.T - target) ** 2).sum()) >= best - 1e-12
    mirrored = target * torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64)  # reflections are not allowed
    assert torch.linalg.det(kabsch(p, mirrored)[0]) == pytest.approx(1.0)
    x0 = torch.cat([p, torch.ones(1, 8, 2, dtype=torch.float64)], -1)
    assert torch.equal(rotate_to(x0, torch.cat([target, x0[..., 3:]], -1))[..., 3:], x0[..., 3:])


def test_size_bands_hold_one_band_per_batch_and_draw_every_molecule_alike():
    sizes = torch.tensor([3] * 50 + [5] * 150 + [9] * 100 + [12] * 100 + [20] * 100)
    bands = SizeBands(sizes, 4)
    assert len(bands) <= 4 and bands.describe().startswith("3-")
    g = torch.Generator().manual_seed(0)
    counts = torch.zeros(len(sizes))
    for _ in range(2000):
        idx = bands(16, g)
        band = bands.band_of[idx]
        assert (band == band[0]).all()  # one band per batch
        counts += torch.bincount(idx, minlength=len(sizes))
    per_size = torch.stack([counts[sizes == s].mean() for s in sizes.unique()])
    expected = 2000 * 16 / len(sizes)
    assert (per_size - expected).abs().max() < 0.1 * expected  # each molecule as often as in uniform batches
    assert torch.equal(SizeBands(sizes, 4)(16, torch.Generator().manual_seed(7)),
                       SizeBands(sizes, 4)(16, torch.Generator().manual_seed(7)))  # from the generator alone


def _path_sample(sizes: list[int], times: list[float]):  # noqa: ANN202
    """Molecules of ``sizes`` (8 slots), their noise and mask, and a condot path sample at ``times``."""
    path = make_path("condot")
    x1, mask = _molecules(sizes, 8)
    x0 = sample_prior(mask, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    t = torch.tensor(times, dtype=torch.float64)
    return path, x1, x0, mask, t, path.sample(x1, t, x0)


def test_the_loss_is_a_mean_over_real_atoms_and_padding_changes_nothing():
    path, x1, x0, mask, t, s = _path_sample([3, 8], [0.3, 0.7])
    pred = remove_com(torch.randn(x1.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64), mask)
    loss = molecule_loss(pred, s, path, "velocity", atom_weight(mask))
    err = (pred - path.target(s, "velocity")).pow(2)[0, :3].mean()  # the 3-atom molecule on its own atoms
    assert loss[0] == pytest.approx(float(err))
    pad = lambda z: torch.cat([z, torch.zeros(2, 4, z.shape[-1], dtype=z.dtype)], 1)  # noqa: E731
    mask_p = torch.cat([mask, torch.zeros(2, 4, dtype=torch.bool)], 1)
    s_p = path.sample(pad(x1), t, pad(x0))
    assert torch.allclose(molecule_loss(pad(pred), s_p, path, "velocity", atom_weight(mask_p)), loss)


def test_data_prediction_loss_is_mse_plus_cross_entropy_and_agrees_with_the_conversion():
    path, x1, x0, mask, t, s = _path_sample([5, 8], [0.2, 0.9])
    logits = torch.randn(2, 8, NUM_TYPES, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    pos = remove_com(torch.randn(2, 8, 3 + NUM_TYPES, dtype=torch.float64), mask)[..., :3]
    pred = torch.cat([pos, logits.softmax(-1) * 0.25], -1) * mask[..., None]
    loss = molecule_loss(pred, s, path, "data", atom_weight(mask))
    for b, n in enumerate((5, 8)):
        ce = torch.nn.functional.cross_entropy(logits[b, :n], x1[b, :n, 3:].argmax(-1))
        mse = (pos[b, :n] - x1[b, :n, :3]).pow(2).mean()
        assert loss[b] == pytest.approx(float(mse + TYPE_WEIGHT * ce))
    # a data prediction's error is (1 - t) times the velocity's error of the converted field (condot)
    v = convert_prediction(pred, s.x_t, s.coeffs, "data", "velocity")
    v_err = (v - path.target(s, "velocity"))[..., :3].pow(2).sum((1, 2))
    x_err = (pred - x1)[..., :3].pow(2).sum((1, 2))
    assert torch.allclose(x_err, (1 - t) ** 2 * v_err)


def test_egnn_computes_only_the_used_slots_and_its_data_prediction_is_equivariant():
    torch.manual_seed(0)
    for prediction, rbf in (("velocity", 0), ("data", 0), ("data", 8)):
        m = EGNN(EGNNConfig(max_atoms=9, hidden=16, layers=2, prediction=prediction, rbf=rbf)).double()
        for p in m.parameters():
            torch.nn.init.normal_(p, std=0.2)
        small, smask = _molecules([4, 3], 9, seed=1)
        big, bmask = _molecules([9], 9, seed=2)
        t = torch.tensor([0.3, 0.6, 0.5], dtype=torch.float64)
        alone = m(small, t[:2], smask)  # only 4 slots used
        together = m(torch.cat([small, big]), t, torch.cat([smask, bmask]))  # all 9 slots
        assert torch.allclose(alone, together[:2], atol=1e-12) and (alone[:, 4:] == 0).all()
        q, _ = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64))
        moved = torch.cat([small[..., :3] @ q.T, small[..., 3:]], -1)
        out = m(moved, t[:2], smask)
        assert torch.allclose(out[..., :3], alone[..., :3] @ q.T, atol=1e-10)
        assert torch.allclose(out[..., 3:], alone[..., 3:], atol=1e-10)
        perm = torch.tensor([2, 0, 3, 1, 4, 5, 6, 7, 8])  # atoms of the first molecule reordered
        swapped = m(small[:, perm], t[:2], smask[:, perm])
        assert torch.allclose(swapped, alone[:, perm], atol=1e-10)
    types = alone[..., 3:].sum(-1)  # the data prediction's types are probabilities x 0.25 on real atoms
    assert torch.allclose(types[smask], torch.full_like(types[smask], 0.25)) and (types[~smask] == 0).all()


def test_self_conditioning_reads_the_estimate_equivariantly_and_trains_on_its_own_estimate():
    from noise2data.molecules.self_conditioning import recycling, self_conditioned_prediction

    torch.manual_seed(0)
    m = EGNN(EGNNConfig(max_atoms=9, hidden=16, layers=2, prediction="data", rbf=4, self_condition=True)).double()
    for p in m.parameters():
        torch.nn.init.normal_(p, std=0.2)
    x, mask = _molecules([5, 3], 9, seed=1)
    est, _ = _molecules([5, 3], 9, seed=2)
    t = torch.tensor([0.3, 0.7], dtype=torch.float64)
    assert torch.equal(m(x, t, mask), m(x, t, mask, x1_prev=torch.zeros_like(x)))  # none = zeros
    given = m(x, t, mask, x1_prev=est)
    assert (given - m(x, t, mask)).abs().max() > 1e-3  # the estimate is read
    q, _ = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64))
    rot = lambda z: torch.cat([z[..., :3] @ q.T, z[..., 3:]], -1)  # noqa: E731
    assert torch.allclose(m(rot(x), t, mask, x1_prev=rot(est)), rot(given), atol=1e-10)
    with pytest.raises(Exception, match="prediction='data'"):
        EGNNConfig(max_atoms=9, self_condition=True)

    calls = []
    spy = lambda x, t, c, x1_prev=None: calls.append(x1_prev) or m(x, t, c, x1_prev=x1_prev)  # noqa: E731
    gen = torch.Generator().manual_seed(0)
    out = self_conditioned_prediction(spy, x, t, mask, gen, share=1.0)
    assert calls[0] is None and torch.allclose(calls[1], m(x, t, mask))
    assert torch.allclose(out, m(x, t, mask, x1_prev=calls[1]))
    assert not calls[1].requires_grad and out.requires_grad  # the gradient flows through the second call only
    calls.clear()
    self_conditioned_prediction(spy, x, t, mask, gen, share=0.0)
    assert calls == [None]
    shares = [len(calls)]
    for _ in range(400):  # one coin per batch, at the given share
        calls.clear()
        self_conditioned_prediction(lambda *a, x1_prev=None: calls.append(1) or x, x, t, mask, gen, share=0.5)
        shares.append(len(calls))
    assert 0.4 < (torch.tensor(shares[1:]) == 2).float().mean() < 0.6

    field = recycling(m)  # sampling: each call hands the next its estimate
    first = field(x, t, mask)
    assert torch.equal(first, m(x, t, mask))
    assert torch.allclose(field(x, t, mask), m(x, t, mask, x1_prev=first))
    plain = EGNN(EGNNConfig(max_atoms=9, hidden=8, layers=1))
    assert recycling(m) is not field and recycling(plain) is plain


def test_radial_basis_functions_peak_at_their_centres_and_separate_bond_lengths():
    from noise2data.molecules.egnn import RadialBasis

    rbf = RadialBasis(17, 8.0)  # centres 0, 0.5, ..., 8
    d = torch.tensor([0.0, 1.0, 1.5, 8.0])
    phi = rbf(d[:, None] ** 2)  # (4, 17)
    assert torch.allclose(phi.max(1).values, torch.ones(4), atol=1e-3)
    assert phi.argmax(1).tolist() == [0, 2, 3, 16]
    assert torch.allclose(phi[1, 1], torch.exp(torch.tensor(-1.0)), atol=1e-4)  # one spacing away: one sd
    single, double = rbf(torch.tensor([[1.54**2], [1.34**2]]))  # C-C and C=C: distinct features
    assert (single - double).abs().max() > 0.3


def test_beta_times_follow_their_law():
    x = TimeDistribution(name="beta", a=2.0, b=1.0).sample(100_000, generator=torch.Generator().manual_seed(0))
    grid = torch.linspace(0.05, 0.95, 19)
    ecdf = (x[:, None] <= grid).float().mean(0)
    assert (ecdf - grid**2).abs().max() < 0.01  # Beta(2, 1): CDF t^2
    y = TimeDistribution(name="beta", a=3.0, b=2.0).sample(100_000, generator=torch.Generator().manual_seed(1))
    assert float(y.mean()) == pytest.approx(0.6, abs=0.005)
    assert float(y.var()) == pytest.approx(3 * 2 / (25 * 6), abs=0.002)
    with pytest.raises(Exception, match="a, b >= 1"):
        TimeDistribution(name="beta", a=0.5, b=1.0)


@pytest.mark.parametrize("spec", ["min-snr:5", "snr+1:3"])
def test_position_weight_scales_each_molecules_position_error_by_its_clipped_snr(spec):
    path, x1, x0, mask, t, s = _path_sample([5, 8, 6], [0.2, 0.5, 0.95])
    logits = torch.randn(3, 8, NUM_TYPES, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    pos = remove_com(torch.randn(3, 8, 3 + NUM_TYPES, dtype=torch.float64), mask)[..., :3]
    pred = torch.cat([pos, logits.softmax(-1) * 0.25], -1) * mask[..., None]
    plain = molecule_loss(pred, s, path, "data", atom_weight(mask))
    kind, cap = parse_position_weight(spec)
    weighted = molecule_loss(pred, s, path, "data", atom_weight(mask), position_weight=(kind, cap))
    snr = (t / (1 - t)) ** 2  # condot: alpha = t, sigma = 1 - t
    want = (snr if kind == "min-snr" else snr + 1).clamp(max=cap)
    assert want[0] < 1 or kind == "snr+1"  # high noise: down-weighted (Min-SNR) or kept at 1
    assert want[2] == cap  # low noise: at the cap
    for b, n in enumerate((5, 8, 6)):
        mse = (pos[b, :n] - x1[b, :n, :3]).pow(2).mean()
        ce = plain[b] - mse  # the type term is not weighted
        assert weighted[b] == pytest.approx(float(want[b] * mse + ce))
    for bad in ("min-snr", "min-snr:0", "snr+1:-2", "min-snr:inf", "uniform:3", "sigma:2"):
        with pytest.raises(UserError, match="position-weight"):
            parse_position_weight(bad)


def test_cli_trains_the_full_recipe_resumes_exactly_and_refuses_what_does_not_apply(tmp_path):
    from noise2data.molecules.build import build_conformers
    from noise2data.training.checkpoint import latest_checkpoint, load_checkpoint

    smiles = ["C", "CC", "CO", "C=O", "CN", "CCO", "CC=O", "C#N", "CCN", "OCO", "CF", "NC=O"] * 2
    data, _ = build_conformers(smiles, seed=0, workers=1)
    npz = data.save(tmp_path / "mols.npz")
    flags = ["--data", f"molecules:{npz}", "--batch-size", "8", "--size-bands", "3", "--coupling", "ot",
             "--objective", "data", "--time-dist", "beta:2,1", "--no-progress", "--checkpoint-every", "3",
             "--lr-schedule", "constant", "--self-condition", "--position-weight", "min-snr:5"]  # constant: the
    # cosine schedule would depend on --steps
    full, half = tmp_path / "full", tmp_path / "half"
    assert main(["train", *flags, "--steps", "6", "--out", str(full)]) == 0
    assert main(["train", *flags, "--steps", "3", "--out", str(half)]) == 0
    assert main(["train", "--out", str(half), "--resume", "--steps", "6", "--no-progress"]) == 0
    a, _ = load_checkpoint(latest_checkpoint(full), ("model",))
    b, _ = load_checkpoint(latest_checkpoint(half), ("model",))
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    cfg = json.loads((full / "config.json").read_text())
    assert cfg["model"]["prediction"] == "data" and cfg["train"]["time_dist"]["name"] == "beta"
    assert cfg["model"]["rbf"] == 16 and cfg["model"]["self_condition"]  # rbf: the molecule default
    assert cfg["cli"]["position_weight"] == "min-snr:5"
    losses = [json.loads(line)["loss"] for line in (full / "metrics.jsonl").read_text().splitlines()
              if "loss" in line]
    assert all(math.isfinite(v) for v in losses)
    assert main(["sample", str(full), "--n", "6", "--steps", "3", "--out", str(tmp_path / "s.xyz")]) == 0
    bad = ["train", "--data", f"molecules:{npz}", "--steps", "1", "--no-progress"]
    assert main([*bad, "--coupling", "ot-blocks", "--out", str(tmp_path / "b1")]) == 2
    assert main([*bad, "--objective", "noise", "--out", str(tmp_path / "b2")]) == 2
    assert main(["train", "--data", "moons", "--size-bands", "4", "--steps", "1", "--out", str(tmp_path / "b3")]) == 2
    assert main(["train", "--data", "moons", "--time-dist", "beta:0.5,1", "--steps", "1",
                 "--out", str(tmp_path / "b4")]) == 2
    assert main(["train", "--data", "moons", "--rbf", "8", "--steps", "1", "--out", str(tmp_path / "b5")]) == 2
    assert main([*bad, "--self-condition", "--objective", "velocity", "--out", str(tmp_path / "b7")]) == 2
    for objective, on in (("data", True), ("velocity", False)):  # self-conditioning's default: with a data prediction
        assert main([*bad, "--objective", objective, "--out", str(tmp_path / objective)]) == 0
        made = json.loads((tmp_path / objective / "config.json").read_text())
        assert made["model"]["self_condition"] is on
        assert made["molecules"]["position_weight"] == ("min-snr:5" if on else "uniform")  # auto
    assert main(["train", "--data", "moons", "--self-condition", "--steps", "1", "--out", str(tmp_path / "b8")]) == 2
    assert main([*bad, "--position-weight", "min-snr:5", "--objective", "velocity", "--out", str(tmp_path / "b9")]) == 2
    assert main([*bad, "--position-weight", "snr:5", "--out", str(tmp_path / "b10")]) == 2
    assert main(["train", "--data", "moons", "--position-weight", "min-snr:5", "--steps", "1",
                 "--out", str(tmp_path / "b11")]) == 2
    with pytest.raises(SystemExit) as exit_:
        main([*bad, "--rbf", "-1", "--out", str(tmp_path / "b6")])
    assert exit_.value.code == 2


def test_a_run_from_before_radial_basis_functions_resumes_without_them(tmp_path):
    from noise2data.molecules.build import build_conformers

    data, _ = build_conformers(["C", "CC", "CO", "CN", "CCO", "OCO"] * 2, seed=0, workers=1)
    npz = data.save(tmp_path / "mols.npz")
    run = tmp_path / "old"
    assert main(["train", "--data", f"molecules:{npz}", "--batch-size", "4", "--rbf", "0", "--steps", "2",
                 "--checkpoint-every", "2", "--no-progress", "--out", str(run)]) == 0
    cfg = json.loads((run / "config.json").read_text())
    del cfg["model"]["rbf"], cfg["model"]["rbf_cutoff"]  # as an older version wrote it
    cfg["cli"].pop("rbf")
    (run / "config.json").write_text(json.dumps(cfg))
    assert main(["train", "--out", str(run), "--resume", "--steps", "4", "--no-progress"]) == 0
    assert load_run(run).model.config.rbf == 0 and load_run(run).step == 4


@pytest.mark.parametrize("divergence", ["exact", "hutchinson"])
def test_subspace_likelihood_equals_the_closed_form_for_a_gaussian_on_the_subspace(divergence):
    """Data N(0, s^2 I) on each molecule's zero-CoM subspace; the condot path's marginal velocity is then
    v = (t s^2 - (1 - t)) / (t^2 s^2 + (1 - t)^2) x, and log p_1 has d = 3 (n - 1) + n T dimensions."""
    from noise2data.molecules.likelihood import subspace_dimension, subspace_log_likelihood

    s, path = 0.7, make_path("condot")
    mask = size_mask(torch.tensor([2, 5, 9, 9]), 9)
    x = s * sample_prior(mask, generator=torch.Generator().manual_seed(0), dtype=torch.float64)

    def field_of(m):
        def v(z, t):
            tt = t.view(-1, 1, 1)
            return remove_com((tt * s**2 - (1 - tt)) / (tt**2 * s**2 + (1 - tt) ** 2) * z, m)
        return v

    d = subspace_dimension(mask, NUM_TYPES).double()
    truth = -0.5 * (x**2).sum((1, 2)) / s**2 - d * (math.log(s) + 0.5 * math.log(2 * math.pi))
    if divergence == "exact":
        out = subspace_log_likelihood(field_of, x, mask, path, solver="rk4", steps=64, divergence="exact")
        assert torch.allclose(out.log_prob, truth, atol=1e-5)
    else:  # unbiased: the mean over 50 probes per molecule (one batch of 50 copies) is within its error
        reps = 50
        out = subspace_log_likelihood(field_of, x.repeat(reps, 1, 1), mask.repeat(reps, 1), path, solver="rk4",
                                      steps=32, divergence="hutchinson", probe="gaussian",
                                      generator=torch.Generator().manual_seed(1))
        est = out.log_prob.view(reps, -1)
        assert (est.std(0) > 0).all()  # the probe does add noise ...
        assert torch.allclose(est.mean(0), truth, atol=4 * float(est.std(0).max()) / math.sqrt(reps))  # ... no bias
        mask = mask.repeat(reps, 1)
    assert (out.z[~mask] == 0).all()


def test_molecule_likelihood_of_a_run_is_finite_and_does_not_depend_on_the_batch(tmp_path):
    from noise2data.molecules.build import build_conformers
    from noise2data.molecules.likelihood import molecule_log_likelihood
    from noise2data.run import load_run

    data, _ = build_conformers(["C", "CC", "CO", "C=O", "CN", "CCO", "CC=O", "C#N"] * 2, seed=0, workers=1)
    npz = data.save(tmp_path / "mols.npz")
    assert main(["train", "--data", f"molecules:{npz}", "--batch-size", "8", "--steps", "4", "--no-progress",
                 "--objective", "data", "--out", str(tmp_path / "run")]) == 0
    run = load_run(tmp_path / "run")
    together = molecule_log_likelihood(run, data.subset(torch.arange(8)), solver="euler", steps=2, divergence="exact")
    alone = molecule_log_likelihood(run, data.subset(torch.tensor([0])), solver="euler", steps=2, divergence="exact")
    assert torch.isfinite(together.log_prob).all()
    assert together.log_prob[0] == pytest.approx(float(alone.log_prob[0]), abs=1e-3)
