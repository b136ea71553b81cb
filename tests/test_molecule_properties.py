"""Conditioning molecules: RDKit properties, the property-conditioned EGNN with guidance's null row,
compositions as a hard constraint, and the one-line errors of bad requests."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from noise2data.cli import main
from noise2data.errors import UserError
from noise2data.molecules.chemistry import ELEMENTS
from noise2data.molecules.egnn import EGNN, EGNNConfig
from noise2data.molecules.properties import (
    PROPERTIES,
    conformer_properties,
    parse_composition,
    property_errors,
    smiles_properties,
)
from noise2data.molecules.space import drop_properties, sample_prior, size_mask

SMILES = ["C", "CC", "CO", "C=O", "CN", "CCO", "CC=O", "C#N", "CCN", "OCO", "CF", "NC=O", "C1CC1", "OC1CC1"] * 2


def test_properties_of_smiles_and_of_conformers_agree():
    from noise2data.molecules.build import build_conformers

    assert smiles_properties("OC1CC1") == [3.0, 0.0, 1.0, 0.0, 1.0, pytest.approx(20.23)]
    data, _ = build_conformers(["OC1CC1", "CC(=O)N", "FC#N"], seed=0, workers=1)
    for i, smi in enumerate(["OC1CC1", "CC(=O)N", "FC#N"]):
        assert conformer_properties(*data.molecule(i)) == pytest.approx(smiles_properties(smi))
    bad = conformer_properties(torch.zeros(3, 3), torch.tensor([1, 1, 1]))  # atoms on top of each other
    assert bad[:4] == [3.0, 0.0, 0.0, 0.0] and np.isnan(bad[4])  # composition still known


def test_compositions_parse_and_refuse_foreign_elements():
    assert parse_composition("C6N1O1") == {"C": 6, "N": 1, "O": 1}
    assert parse_composition("C2,O1,H6") == {"C": 2, "O": 1, "H": 6}
    for bad, why in (("S1", "not one this model knows"), ("C2C1", "twice"), ("H4", "no heavy atom"),
                     ("C6x", "bad composition")):
        with pytest.raises(UserError, match=why):
            parse_composition(bad)


def test_the_property_conditioned_egnn_has_a_null_row_and_checks_its_condition():
    torch.manual_seed(0)
    m = EGNN(EGNNConfig(max_atoms=6, hidden=16, layers=2, cond_dim=3)).double()
    for p in m.parameters():
        torch.nn.init.normal_(p, std=0.3)
    mask = size_mask(torch.tensor([4, 6]), 6)
    x = sample_prior(mask, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    t = torch.tensor([0.4, 0.4], dtype=torch.float64)
    y = torch.tensor([[1.0, -0.5, 2.0], [1.0, -0.5, 2.0]], dtype=torch.float64)
    cond = torch.cat([mask.double(), y], 1)
    other = torch.cat([mask.double(), -y], 1)
    null = torch.cat([mask.double(), torch.full_like(y, float("nan"))], 1)
    half_null = torch.cat([mask.double(), torch.tensor([[float("nan"), 9.0, 9.0]] * 2, dtype=torch.float64)], 1)
    assert not torch.allclose(m(x, t, cond), m(x, t, other))  # the properties matter
    assert torch.equal(m(x, t, null), m(x, t, half_null))  # any NaN makes the row null
    assert torch.isfinite(m(x, t, null)).all() and (m(x, t, null)[0, 4:] == 0).all()
    with pytest.raises(UserError, match="conditioned on 3 properties"):
        m(x, t, mask)
    g = torch.Generator().manual_seed(0)
    dropped = drop_properties(cond.repeat(2000, 1), 6, 0.25, g)
    share = torch.isnan(dropped[:, 6:]).all(1).double().mean()
    assert abs(float(share) - 0.25) < 0.03 and torch.equal(dropped[:, :6], cond.repeat(2000, 1)[:, :6])


def test_property_errors():
    req = torch.tensor([[2.0, 0, 1, 0, 0, 20.0], [3.0, 1, 0, 0, 1, 12.0]])
    got = torch.tensor([[2.0, 0, 1, 0, 1, 25.0], [3.0, 0, 0, 0, float("nan"), float("nan")]])
    e = property_errors(req, got)
    assert e["exact_composition"] == 0.5 and e["mae_N"] == 0.5 and e["mae_rings"] == 1.0 and e["mae_tpsa"] == 5.0


@pytest.fixture(scope="module")
def conditioned(tmp_path_factory):
    from noise2data.molecules.build import build_conformers

    folder = tmp_path_factory.mktemp("props")
    data, _ = build_conformers(SMILES, seed=0, workers=1)
    npz = data.save(folder / "mols.npz")
    props = folder / "props.npz"
    assert main(["data", "properties", "--molecules", str(npz), "--out", str(props)]) == 0
    run = folder / "run"
    assert main(["train", "--data", f"molecules:{npz}", "--cond-file", str(props), "--batch-size", "8", "--steps",
                 "4", "--objective", "data", "--no-progress", "--out", str(run)]) == 0
    return folder, npz, props, run


def test_a_property_run_samples_with_guidance_and_compositions_are_exact(conditioned, tmp_path, capsys):
    from noise2data.molecules.data import read_xyz

    folder, npz, props, run = conditioned
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["model"]["cond_dim"] == len(PROPERTIES) and cfg["molecules"]["properties"]["names"] == list(PROPERTIES)
    assert cfg["train"]["label_dropout"] == 0.1
    capsys.readouterr()
    assert main(["sample", str(run), "--n", "4", "--steps", "3", "--condition", "2,0,1,0,0,20", "--guidance", "2",
                 "--guidance-interval", "0.3,1", "--out", str(tmp_path / "g.xyz")]) == 0
    assert len(read_xyz(tmp_path / "g.xyz")) == 4
    assert "(midpoint, 3 steps, 6 NFE, condition 2,0,1,0,0,20, guidance 2 on t in [0.3, 1], step" in \
        capsys.readouterr().err
    # the guidance interval is honoured: outside every grid time (3 Euler steps: t = 0, 1/3, 2/3) guidance 2 draws
    # what guidance 1 draws; inside, something else
    from noise2data.molecules.sampling import sample_molecules
    from noise2data.run import load_run

    loaded, want = load_run(run, device="cpu"), torch.tensor([2.0, 0, 1, 0, 0, 20])

    def positions(w: float, interval: tuple[float, float]) -> list:
        mols = sample_molecules(loaded, 3, solver="euler", steps=3, condition=want, guidance=w, interval=interval)
        return [pos for pos, _ in mols]

    unguided = positions(1.0, (0.0, 1.0))
    assert all(torch.equal(a, b) for a, b in zip(unguided, positions(2.0, (0.9, 1.0)), strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(unguided, positions(2.0, (0.0, 1.0)), strict=True))
    assert main(["sample", str(run), "--n", "2", "--steps", "2", "--condition", ",".join(["nan"] * 6),
                 "--out", str(tmp_path / "null.xyz")]) == 0  # a null request samples unconditionally
    for spec, want in (("C2O1", {"C": 2, "O": 1}), ("C3O1H6", {"C": 3, "O": 1, "H": 6})):
        out = tmp_path / f"{spec}.xyz"
        assert main(["sample", str(run), "--n", "5", "--steps", "3", "--composition", spec, "--out", str(out)]) == 0
        for _, types in read_xyz(out):
            counts = {e: int((types == ELEMENTS.index(e)).sum()) for e in ELEMENTS}
            assert all(counts[e] == k for e, k in want.items()) and counts["N"] == counts["F"] == 0
            if "H" not in want:  # hydrogens from the training molecules with two C and one O: CCO, OCO+C...
                assert counts["H"] in (6, 4)
    assert main(["sample", str(run), "--n", "3", "--atoms", "5", "--steps", "2", "--out", str(tmp_path / "a.xyz")]) == 0
    assert all(len(t) == 5 for _, t in read_xyz(tmp_path / "a.xyz"))


def test_eval_of_a_property_run_reports_property_errors_per_mode(conditioned, tmp_path, capsys):
    from noise2data.molecules.data import MoleculeSet
    from noise2data.molecules.property_errors import property_requests

    folder, npz, props, run = conditioned
    requests = property_requests(MoleculeSet.load(npz), 5)
    assert requests.shape == (5, len(PROPERTIES)) and torch.isfinite(requests).all()
    out = tmp_path / "e.json"
    assert main(["eval", str(run), "--n", "5", "--steps", "2", "--guidance", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "property errors (5 requests" in printed and "MAE rings" in printed
    table = json.loads(out.read_text())["properties"]
    assert list(table) == ["unconditional (null)", "condition, guidance 1", "condition, guidance 2",
                           "composition fixed + condition"]
    # the report's property table has the guided row at report --guidance (default 2), on its interval
    for extra, row in (([], "condition, guidance 2<"), (["--guidance", "3", "--guidance-interval", "0.3,1"],
                                                        "condition, guidance 3 on t in [0.3, 1]<")):
        assert main(["report", str(run), "--n", "3", *extra, "--out", str(tmp_path / "r.html")]) == 0
        page = (tmp_path / "r.html").read_text()
        assert "Property conditioning" in page and row in page, row
    assert table["composition fixed + condition"]["exact_composition"] == 1.0  # a hard constraint
    assert all(r["n"] == 5 and 0 <= r["valid"] <= 1 and r["mae_C"] >= 0 for r in table.values())
    page = tmp_path / "r.html"
    assert main(["report", str(run), "--n", "4", "--device", "cpu", "--out", str(page)]) == 0
    assert "Property conditioning" in page.read_text() and "MAE rings" in page.read_text()


@pytest.mark.parametrize("extra,message", [
    (["--atoms", "0"], "--atoms must be between 2"),
    (["--composition", "S1"], "not one this model knows"),
    (["--composition", "C9N3"], "no training molecule has the heavy atoms"),
    (["--condition", "1,2"], "conditions on 6 properties"),
    (["--composition", "C2", "--atoms", "4"], "not both"),
])
def test_bad_sampling_requests_get_one_line(conditioned, tmp_path, capsys, extra, message):
    run = conditioned[3]
    assert main(["sample", str(run), "--n", "2", "--steps", "2", *extra, "--out", str(tmp_path / "x.xyz")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_property_files_must_match_the_molecules(conditioned, tmp_path, capsys):
    folder, npz, props, _ = conditioned
    short = tmp_path / "short.npz"
    z = np.load(props)
    np.savez(short, properties=z["properties"][:-1], names=z["names"])
    assert main(["train", "--data", f"molecules:{npz}", "--cond-file", str(short), "--steps", "1",
                 "--out", str(tmp_path / "r")]) == 2
    assert "one row each" in capsys.readouterr().err
    unconditioned = tmp_path / "plain"
    assert main(["train", "--data", f"molecules:{npz}", "--batch-size", "8", "--steps", "1", "--no-progress",
                 "--out", str(unconditioned)]) == 0
    for extra, message in ((["--condition", "1,0,0,0,0,0"], "not trained on properties"),
                           (["--guidance", "2"], "needs a condition")):
        assert main(["sample", str(unconditioned), "--n", "2", *extra, "--out", str(tmp_path / "y.xyz")]) == 2
        assert message in capsys.readouterr().err
