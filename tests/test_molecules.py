"""Molecules: bonds from distances, conformers, the molecule file, the zero-CoM prior, EGNN symmetry,
sampling, metrics on real conformers, and the CLI from SMILES to SDF."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from noise2data.cli import main
from noise2data.errors import UserError
from noise2data.molecules.chemistry import ELEMENTS, atom_stability, bond_orders
from noise2data.molecules.data import MoleculeSet, read_xyz, to_xyz
from noise2data.molecules.egnn import EGNN, EGNNConfig
from noise2data.molecules.space import SizeDistribution, decode, encode, remove_com, sample_prior, size_mask

C, H, N, OXY = (ELEMENTS.index(e) for e in "CHNO")
SIMPLE = ["CCO", "CC#N", "C=O", "CC(=O)N", "OCC=C", "C1CC1", "CN"]  # no aromatic rings


def _pair(d: float, a: int, b: int) -> int:
    return int(bond_orders(torch.tensor([[0.0, 0, 0], [d, 0, 0]]), torch.tensor([a, b]))[0, 1])


def test_bond_orders_follow_the_length_tables():
    assert [_pair(d, C, C) for d in (1.54, 1.34, 1.20, 1.70)] == [1, 2, 3, 0]
    assert [_pair(d, C, OXY) for d in (1.43, 1.20, 1.13)] == [1, 2, 3]
    assert _pair(1.09, C, H) == 1 and _pair(0.74, H, H) == 1 and _pair(1.2, H, H) == 0
    assert _pair(1.20, OXY, H) == 0  # no double bonds to hydrogen
    # methane: a tetrahedron of C-H 1.09 A; every atom has its valence
    v = torch.tensor([[1.0, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]]) / math.sqrt(3) * 1.09
    pos, types = torch.cat([torch.zeros(1, 3), v]), torch.tensor([C, H, H, H, H])
    assert atom_stability(pos, types).all()
    assert not atom_stability(pos[:4], types[:4])[0]  # CH3: carbon short of one bond


def test_molecule_file_round_trip_and_errors(tmp_path):
    mask = torch.tensor([[True, True, False], [True, True, True]])
    ms = MoleculeSet(torch.randn(2, 3, 3) * mask[..., None], torch.tensor([[1, 0, 0], [1, 3, 0]]), mask, ["C", "CO"])
    back = MoleculeSet.load(ms.save(tmp_path / "m.npz"))
    assert torch.allclose(back.positions, ms.positions) and torch.equal(back.types, ms.types)
    assert torch.equal(back.mask, ms.mask) and back.smiles == ["C", "CO"] and back.sizes().tolist() == [2, 3]
    np.savez(tmp_path / "bad.npz", positions=np.zeros((2, 3, 3)))
    with pytest.raises(UserError, match="missing mask, types"):
        MoleculeSet.load(tmp_path / "bad.npz")
    np.savez(tmp_path / "t.npz", positions=np.zeros((1, 2, 3)), types=np.array([[7, 0]]), mask=np.ones((1, 2), bool))
    with pytest.raises(UserError, match="atom types must be indices"):
        MoleculeSet.load(tmp_path / "t.npz")
    with pytest.raises(UserError, match="not found"):
        MoleculeSet.load(tmp_path / "none.npz")


def test_xyz_round_trip_and_malformed_files(tmp_path):
    p, t = torch.tensor([[0.0, 0.0, 0.1], [0.9, 0.0, 0.0]]), torch.tensor([OXY, H])
    f = tmp_path / "a.xyz"
    f.write_text(to_xyz(p, t, "first") + to_xyz(p * 2, t, "second"))
    mols = read_xyz(f)
    assert len(mols) == 2 and torch.allclose(mols[1][0], p * 2) and torch.equal(mols[0][1], t)
    f.write_text("3\ncomment\nO 0 0 0\nH 1 0 0\n")
    with pytest.raises(UserError, match="announces 3 atoms but has 2"):
        read_xyz(f)
    f.write_text("2\nc\nXx 0 0 0\nH 1 0 0\n")
    with pytest.raises(UserError, match="malformed XYZ"):
        read_xyz(f)


def test_prior_lives_on_the_zero_centre_of_mass_subspace():
    mask = size_mask(torch.tensor([5] * 20000), 7)
    x0 = sample_prior(mask, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    pos = x0[..., :3]
    assert (pos[:, 5:] == 0).all() and (x0[:, 5:, 3:] == 0).all()  # padding is 0
    assert pos[:, :5].sum(1).abs().max() < 1e-12  # centre of mass 0
    # N(0, I) projected on the subspace: each coordinate has variance (n - 1) / n
    assert abs(float(pos[:, :5].var()) - 4 / 5) < 0.01
    assert abs(float(x0[:, :5, 3:].var()) - 1.0) < 0.01


@pytest.fixture(scope="module")
def egnn64():
    torch.manual_seed(0)
    m = EGNN(EGNNConfig(max_atoms=9, hidden=32, layers=3)).double()
    for p in m.parameters():  # leave the near-zero start behind, so the test can fail
        torch.nn.init.normal_(p, std=0.2)
    return m


def test_egnn_is_equivariant_to_rotations_reflections_translations_and_permutations(egnn64):
    g = torch.Generator().manual_seed(1)
    mask = torch.tensor([[True] * 9, [True] * 6 + [False] * 3])
    x, t = sample_prior(mask, generator=g, dtype=torch.float64), torch.rand(2, generator=g, dtype=torch.float64)
    out = egnn64(x, t, mask)
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=g, dtype=torch.float64))
    q = q @ torch.diag(torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64))  # include a reflection
    moved = x.clone()
    moved[..., :3] = (x[..., :3] @ q.T + torch.randn(3, generator=g, dtype=torch.float64)) * mask[..., None]
    out_m = egnn64(moved, t, mask)
    assert torch.allclose(out_m[..., :3], out[..., :3] @ q.T, atol=1e-5)  # positions rotate with the input
    assert torch.allclose(out_m[..., 3:], out[..., 3:], atol=1e-5)  # types do not care
    perm = torch.randperm(6, generator=g)
    xp = x.clone()
    xp[1, :6] = x[1, perm]
    assert torch.allclose(egnn64(xp, t, mask)[1, :6], out[1, perm], atol=1e-5)
    assert (out[1, 6:] == 0).all() and out[..., :3].sum(1).abs().max() < 1e-10  # padding 0, CoM 0
    assert out.abs().max() > 1e-3  # a non-trivial output


def test_egnn_errors_name_the_shape(egnn64):
    with pytest.raises(UserError, match=r"expects molecules \(B, 9, 8\)"):
        egnn64(torch.zeros(2, 5, 8, dtype=torch.float64), torch.rand(2))
    with pytest.raises(UserError, match="atom mask, bool"):
        egnn64(torch.zeros(2, 9, 8, dtype=torch.float64), torch.rand(2), torch.ones(2, 9))


def test_encode_decode_and_sizes():
    mask = torch.tensor([[True, True, False]])
    ms = MoleculeSet(torch.tensor([[[1.0, 0, 0], [3.0, 0, 0], [0, 0, 0]]]), torch.tensor([[C, OXY, 0]]), mask)
    x = encode(ms, 0.25)
    assert x.shape == (1, 3, 8) and torch.allclose(x[0, :2, 0], torch.tensor([-1.0, 1.0]))  # centred
    assert torch.allclose(x[0, 1, 3:], torch.nn.functional.one_hot(torch.tensor(OXY), 5).float() * 0.25)
    (pos, types), = decode(x, mask)
    assert torch.equal(types, torch.tensor([C, OXY])) and pos.shape == (2, 3)
    sizes = SizeDistribution({3: 1, 5: 3})
    draw = sizes.sample(4000, torch.Generator().manual_seed(0))
    assert set(draw.tolist()) == {3, 5} and abs(float((draw == 5).double().mean()) - 0.75) < 0.03
    assert torch.equal(SizeDistribution.from_dict(sizes.to_dict()).probs, sizes.probs)
    with pytest.raises(UserError, match="do not fit"):
        size_mask(torch.tensor([9]), 7)
    assert torch.equal(remove_com(x, mask), x)


rdkit = pytest.importorskip("rdkit")


def test_conformers_score_as_real_molecules_and_failures_are_counted():
    from noise2data.molecules.build import build_conformers
    from noise2data.molecules.metrics import dataset_metrics, molecule_metrics

    data, report = build_conformers(SIMPLE + ["C1CC", "CCCl"], workers=1, progress=False)
    assert report.built == len(SIMPLE) and report.failed["parse"] == 1 and report.failed["elements"] == 1
    assert data.positions[data.mask].shape[0] == int(data.sizes().sum())
    for i in range(len(data)):  # centred at the origin
        assert data.molecule(i)[0].mean(0).abs().max() < 1e-4
    m = dataset_metrics(data)
    assert m["atom_stability"] == 1.0 and m["molecule_stability"] == 1.0 and m["validity"] == 1.0
    assert set(m["smiles"]) == set(data.smiles)  # bonds perceived from the geometry give back each SMILES
    # the metrics can fail: random positions are neither stable nor, mostly, valid
    g = torch.Generator().manual_seed(0)
    noise = [(torch.randn(12, 3, generator=g) * 1.5, torch.randint(0, 5, (12,), generator=g)) for _ in range(40)]
    bad = molecule_metrics(noise, reference_smiles=set())
    assert bad["molecule_stability"] < 0.1 and bad["atom_stability"] < 0.5
    again = molecule_metrics([data.molecule(i) for i in range(len(data))], reference_smiles=set(data.smiles))
    assert again["novelty"] == 0.0 and again["uniqueness"] == 1.0


def test_cli_from_smiles_to_sdf_and_metrics(tmp_path):
    from rdkit import Chem

    smi = tmp_path / "mols.txt"
    smi.write_text("\n".join(SIMPLE * 3) + "\n")
    npz, run = tmp_path / "mols.npz", tmp_path / "run"
    assert main(["data", "qm9", "--smiles", str(smi), "--workers", "1", "--out", str(npz)]) == 0
    assert main(["train", "--data", f"molecules:{npz}", "--model", "egnn", "--steps", "4", "--batch-size", "8",
                 "--checkpoint-every", "2", "--no-progress", "--device", "cpu", "--out", str(run)]) == 0
    cfg = json.loads((run / "config.json").read_text())
    sizes = {str(Chem.AddHs(Chem.MolFromSmiles(s)).GetNumAtoms()) for s in SIMPLE}
    assert cfg["model"]["name"] == "egnn" and set(cfg["molecules"]["sizes"]) == sizes
    # resume continues from the checkpoint at step 4
    assert main(["train", "--out", str(run), "--resume", "--steps", "6", "--no-progress"]) == 0
    sdf, xyz = tmp_path / "s.sdf", tmp_path / "s.xyz"
    assert main(["sample", str(run), "--n", "5", "--steps", "4", "--out", str(sdf)]) == 0
    assert main(["sample", str(run), "--n", "5", "--steps", "4", "--out", str(xyz), "--plot",
                 str(tmp_path / "m.png")]) == 0
    mols = [m for m in Chem.SDMolSupplier(str(sdf), sanitize=False)]
    assert len(mols) == 5 and all(m is not None and m.GetNumConformers() == 1 for m in mols)
    from_xyz = read_xyz(xyz)
    assert len(from_xyz) == 5
    for pos, _ in from_xyz:  # sampling keeps the centre of mass at 0
        assert pos.mean(0).abs().max() < 1e-4
    assert main(["eval", str(run), "--n", "10", "--steps", "4", "--out", str(tmp_path / "e.json")]) == 0
    res = json.loads((tmp_path / "e.json").read_text())["metrics"]
    assert res["data (training conformers)"]["validity"] == 1.0
    assert 0 <= res["model, step 6"]["atom_stability"] <= 1
    assert main(["eval", str(run), "--n", "4", "--steps", "2", "--step", "4", "--out", str(tmp_path / "e4.json")]) == 0
    assert json.loads((tmp_path / "e4.json").read_text())["step"] == 4  # an earlier checkpoint, by its step
    assert main(["eval", str(run), "--n", "4", "--step", "5"]) == 2  # no such checkpoint
    assert main(["sample", str(run), "--n", "5", "--out", str(tmp_path / "s.npy")]) == 2
    assert main(["train", "--data", f"molecules:{npz}", "--model", "mlp", "--out", str(tmp_path / "r2")]) == 2


def test_sdf_and_xyz_round_trip_into_a_training_set(tmp_path):
    from noise2data.molecules.build import build_conformers
    from noise2data.molecules.data import read_sdf
    from noise2data.molecules.output import write_molecules

    data, _ = build_conformers(SIMPLE, workers=1, progress=False)
    mols = [data.molecule(i) for i in range(len(data))]
    for suffix in (".sdf", ".xyz"):
        f = write_molecules(mols, tmp_path / f"m{suffix}")
        back = MoleculeSet.read(f)
        assert torch.equal(back.mask, data.mask) and torch.equal(back.types, data.types)
        assert torch.allclose(back.positions, data.positions, atol=2e-4)  # SDF keeps 4 decimals
    assert len(read_sdf(tmp_path / "m.sdf")) == len(SIMPLE)
    (tmp_path / "bad.sdf").write_text("not an sdf\n$$$$\n")
    with pytest.raises(UserError, match="cannot be read"):
        read_sdf(tmp_path / "bad.sdf")
    with pytest.raises(UserError, match=".npz, .xyz or .sdf"):
        MoleculeSet.read(tmp_path / "m.pdb")


def test_generic_sampling_and_likelihood_refuse_molecule_runs(tmp_path):
    from noise2data.run import load_run

    smi = tmp_path / "m.txt"
    smi.write_text("CCO\nCN\n")
    npz, run = tmp_path / "m.npz", tmp_path / "run"
    assert main(["data", "qm9", "--smiles", str(smi), "--workers", "1", "--out", str(npz)]) == 0
    assert main(["train", "--data", f"molecules:{npz}", "--model", "egnn", "--steps", "2", "--batch-size", "2",
                 "--no-progress", "--device", "cpu", "--out", str(run)]) == 0
    r = load_run(run)
    with pytest.raises(UserError, match="molecule run"):
        r.sample(4)
    with pytest.raises(UserError, match="molecule run"):
        r.log_likelihood(torch.zeros(2, *r.data_shape))
    assert main(["nll", str(run), "--n", "2"]) == 2


def test_a_pool_of_workers_builds_the_same_conformers_as_one_process():
    from noise2data.molecules.build import build_conformers

    one, _ = build_conformers(SIMPLE * 2, workers=1, progress=False)
    two, _ = build_conformers(SIMPLE * 2, workers=2, progress=False)  # seeds go with the molecules, not workers
    assert one.smiles == two.smiles and torch.equal(one.types, two.types)
    assert torch.allclose(one.positions, two.positions, atol=1e-5)
