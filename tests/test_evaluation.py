"""Evaluating runs: eval/nll/report commands, the likelihood in data units, training curves."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys

import pytest
import torch
from torch import nn

from browser import blank_margins, embedded_images, render
from noise2data.cli import main
from noise2data.data import Standardizer
from noise2data.paths import make_path
from noise2data.run import Run, load_run
from noise2data.training.logger import read_log

FAST = ["--steps", "120", "--batch-size", "128", "--hidden", "48", "--depth", "2", "--n-data", "4000",
        "--checkpoint-every", "60", "--no-progress", "--device", "cpu"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "cb"
    assert main(["train", "--data", "checkerboard", "--out", str(out), "--eval-every", "60",
                 "--eval-metrics", "w2,energy", "--eval-n", "300", *FAST]) == 0
    return out


def test_periodic_evaluation_is_logged_beside_the_loss_with_its_floor(run_dir):
    losses, evals = read_log(run_dir)
    assert [r["step"] for r in evals] == [60, 120]
    for r in evals:
        assert set(r["eval"]) == {"w2", "energy", "w2_floor", "energy_floor"}
        assert r["eval"]["w2"] > 0 and r["eval"]["w2_floor"] > 0
    assert losses and all(math.isfinite(r["loss"]) for r in losses)


def test_periodic_evaluation_does_not_change_training(run_dir, tmp_path):
    # the evaluator samples with its own generator: the weights equal those of a run without it
    plain = tmp_path / "plain"
    assert main(["train", "--data", "checkerboard", "--out", str(plain), *FAST]) == 0
    a, b = load_run(run_dir), load_run(plain)
    for p, q in zip(a.model.parameters(), b.model.parameters(), strict=True):
        assert torch.equal(p, q)


def test_eval_prints_a_table_and_writes_json(run_dir, capsys):
    assert main(["eval", str(run_dir), "--n", "400", "--steps", "4", "--metrics", "w2,sw2,mmd,recall",
                 "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"w2(\s+[\d.]+){4}\s+[\d.]+x", out) and "floor" in out
    res = json.loads((run_dir / "eval.json").read_text())
    assert set(res["metrics"]) == {"w2", "sw2", "mmd", "recall"}
    assert res["sampler"]["nfe"] == 8 and res["step"] == 120
    for m in res["metrics"].values():
        assert m["floor"] is not None and m["value"] >= 0
        assert m["floor_sd"] is not None and m["floor_sd"] > 0  # three fresh floor draws for generated data
        assert m["repeats"] == 3
    w2 = res["metrics"]["w2"]
    assert w2["ratio_low"] <= w2["ratio"] <= w2["ratio_high"] and "ratio [" in out
    assert res["metrics"]["recall"]["ratio_low"] is None  # higher is better: no floor ratio


def test_eval_repeats_sets_the_number_of_triples(run_dir, capsys):
    assert main(["eval", str(run_dir), "--n", "200", "--steps", "2", "--metrics", "w2", "--repeats", "5",
                 "--json", "--device", "cpu"]) == 0
    w2 = json.loads(capsys.readouterr().out)["metrics"]["w2"]
    assert w2["repeats"] == 5 and w2["ratio_low"] <= w2["ratio"] <= w2["ratio_high"]
    assert main(["eval", str(run_dir), "--n", "200", "--metrics", "w2", "--repeats", "1", "--json",
                 "--device", "cpu"]) == 0
    one = json.loads(capsys.readouterr().out)["metrics"]["w2"]
    assert one["repeats"] == 1 and one["ratio_low"] is None  # one pair: no interval


def test_eval_json_is_one_object_on_stdout(run_dir, capsys):
    assert main(["eval", str(run_dir), "--n", "300", "--metrics", "energy,nll", "--nll-n", "50", "--json",
                 "--device", "cpu", "--out", str(run_dir / "e2.json")]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["nll"]["n"] == 50 and res["nll"]["divergence"] == "exact"
    # checkerboard is uniform on area 32: the exact NLL is log 32, and no model beats it on average
    assert res["nll"]["true_nll_nats"] == pytest.approx(math.log(32))
    assert res["nll"]["nll_nats"] > math.log(32) - 4 * res["nll"]["nll_se"]


def test_nll_command(run_dir, capsys):
    assert main(["nll", str(run_dir), "--n", "40", "--steps", "16", "--json", "--device", "cpu"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["nfe"] == 64 and math.isfinite(res["nll_nats"])
    assert res["bits_per_dim"] == pytest.approx(res["nll_nats"] / (2 * math.log(2)))


@pytest.mark.parametrize("argv,message", [
    (["eval", "RUN", "--metrics", "w2,fud"], "unknown metric"),
    (["eval", "RUN", "--metrics", "fid"], "feature extractor"),
    (["eval", "RUN", "--solver", "rk9"], "unknown solver"),
    (["nll", "RUN", "--dequantize", "-1"], "dequantize"),
    (["nll", "RUN", "--data", "POINTS"], "shape"),
    (["eval", "NOT_A_RUN"], "not a noise2data run"),
])
def test_bad_evaluation_input_is_one_line(run_dir, tmp_path, capsys, argv, message):
    import numpy as np

    np.save(tmp_path / "p.npy", np.zeros((10, 3), dtype=np.float32))
    (tmp_path / "empty").mkdir()
    subs = {"RUN": str(run_dir), "POINTS": str(tmp_path / "p.npy"), "NOT_A_RUN": str(tmp_path / "empty")}
    assert main([subs.get(a, a) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err


class StandardGaussianVelocity(nn.Module):
    """The exact condot velocity when the (standardised) data is N(0, I): v = (2t - 1) x / (t^2 + (1-t)^2)."""

    def forward(self, x, t, cond=None):
        t = t.view(-1, *[1] * (x.ndim - 1))
        return (2 * t - 1) * x / (t**2 + (1 - t) ** 2)


def test_run_likelihood_is_in_data_units():
    # data N(mu, diag(s^2)) in data units is N(0, I) after standardisation; the run must add -sum log s
    mu, s = torch.tensor([3.0, -1.0, 0.5]), torch.tensor([0.5, 2.0, 4.0])
    run = Run(run_dir=None, config={"model": {"data_shape": [3]}}, model=StandardGaussianVelocity(),
              path=make_path("condot"), prediction="velocity", standardizer=Standardizer(mu, s), step=0,
              device=torch.device("cpu"))
    x = mu + s * torch.randn(200, 3, generator=torch.Generator().manual_seed(0))
    out = run.log_likelihood(x, solver="rk4", steps=64)
    true = torch.distributions.Normal(mu, s).log_prob(x).sum(1)
    assert (out.log_prob - true).abs().max() < 1e-3
    hutch = run.log_likelihood(x, divergence="hutchinson", steps=64)
    assert (hutch.log_prob - true).abs().mean() < 0.05  # unbiased; here the Jacobian is diagonal


def test_report_is_self_contained_and_renders(run_dir, tmp_path):
    pytest.importorskip("matplotlib")
    run_copy = tmp_path / "run"  # without an eval.json from the other tests: the report evaluates itself
    shutil.copytree(run_dir, run_copy, ignore=shutil.ignore_patterns("eval.json", "e*.json"))
    out = tmp_path / "report.html"
    assert main(["report", str(run_copy), "--n", "300", "--solvers", "euler,heun", "--device", "cpu",
                 "--out", str(out)]) == 0
    page = out.read_text()
    images = embedded_images(page)
    assert len(images) == 4 and "Training curves" in images
    assert "noise floor" in page and "Negative log-likelihood" in page
    assert "http://" not in page and "https://" not in page  # nothing to fetch
    # one floor per metric: the W2 floor under the quality-vs-NFE table is the metrics table's
    table_floor = re.search(r"<td>w2</td><td class=num>[^<]+</td><td class=num>([0-9.]+)", page).group(1)
    assert re.search(r"<p class=note>noise floor ([0-9.]+)</p>", page).group(1) == table_floor
    assert max(blank_margins(page).values()) < 0.08  # figures sized to their content
    body, shot = render(out, tmp_path)
    assert 'data-images-total="4"' in body and 'data-images-loaded="4"' in body, body
    assert shot.read_bytes()[:4] == b"\x89PNG" and shot.stat().st_size > 50_000  # a page, not a blank


def test_tensorboard_logging(tmp_path):
    pytest.importorskip("tensorboard")
    out = tmp_path / "tb"
    assert main(["train", "--data", "moons", "--out", str(out), "--tensorboard", *FAST]) == 0
    assert any(p.name.startswith("events.out.tfevents") for p in (out / "tensorboard").iterdir())


def test_eval_as_a_subprocess(run_dir):
    r = subprocess.run([sys.executable, "-m", "noise2data", "eval", str(run_dir), "--n", "200",
                        "--metrics", "energy", "--json", "--device", "cpu", "--out", str(run_dir / "e3.json")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["metrics"]["energy"]["floor"] > 0


def test_dequantised_training_and_bits_per_dim(tmp_path, capsys):
    import numpy as np

    # integer "pixels" 0..3 in 4 dimensions: a uniform model of them has exactly 2 bits/dim
    levels = np.random.default_rng(0).integers(0, 4, (3000, 4)).astype(np.float32)
    np.save(tmp_path / "ints.npy", levels)
    out = tmp_path / "deq"
    assert main(["train", "--data", str(tmp_path / "ints.npy"), "--out", str(out), "--dequantize", "1",
                 *FAST]) == 0
    assert json.loads((out / "config.json").read_text())["train"]["dequantize"] == 1.0
    assert main(["nll", str(out), "--data", str(tmp_path / "ints.npy"), "--n", "300", "--steps", "16",
                 "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["dequantize"] == 1.0  # taken from the run
    # the data are uniform on 4^4 cells: 2 bits/dim is the truth, and a short run lands near it
    assert 1.9 < res["bits_per_dim"] < 2.6
    assert main(["train", "--data", "moons", "--out", str(tmp_path / "bad"), "--dequantize", "-1", *FAST]) == 2


def test_report_uses_eval_json_only_for_the_current_step(run_dir, tmp_path):
    pytest.importorskip("matplotlib")
    run_copy = tmp_path / "run"
    shutil.copytree(run_dir, run_copy, ignore=shutil.ignore_patterns("*.json.tmp"))
    fake = {"run": str(run_copy), "n": 10, "reference": "r", "sampler": {"solver": "heun", "steps": 2, "nfe": 4},
            "metrics": {"w2": {"name": "w2", "value": 123.4567, "floor": 1.0, "n": 10, "higher_is_better": False,
                               "ratio": 123.4567}}}
    for step, shown in ((120, True), (60, False)):
        (run_copy / "eval.json").write_text(json.dumps(fake | {"step": step}))
        assert main(["report", str(run_copy), "--n", "200", "--solvers", "euler", "--device", "cpu"]) == 0
        assert ("123.4567" in (run_copy / "report.html").read_text()) == shown
