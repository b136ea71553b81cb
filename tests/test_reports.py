"""One report per modality, rendered in headless Chromium: images as grids beside real images (per
class, with and without guidance) with the FID table, molecules as 3-D views beside real ones with
the chemistry table beside the data's own row."""

from __future__ import annotations

import re

import pytest

from browser import blank_margins, embedded_images, render
from noise2data.cli import main
from noise2data.modalities import get_modality

FAST = ["--steps", "6", "--checkpoint-every", "6", "--no-progress", "--device", "cpu"]


def _check_page(out, tmp_path, n_images: int, margin: float = 0.08) -> str:  # noqa: ANN001
    page = out.read_text()
    assert len(embedded_images(page)) == n_images, embedded_images(page)
    assert "http://" not in page and "https://" not in page
    assert max(blank_margins(page).values()) < margin, blank_margins(page)
    body, shot = render(out, tmp_path)
    assert f'data-images-total="{n_images}"' in body and f'data-images-loaded="{n_images}"' in body, body
    assert shot.read_bytes()[:4] == b"\x89PNG" and shot.stat().st_size > 30_000
    return page


def test_image_report_shows_class_grids_with_and_without_guidance_and_the_fid_table(tmp_path):
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    run = tmp_path / "digits"
    assert main(["train", "--data", "digits", "--cond", "label", "--batch-size", "16", "--out", str(run), *FAST]) == 0
    fx = tmp_path / "fx.safetensors"
    assert main(["features", "--data", "digits", "--epochs", "2", "--out", str(fx)]) == 0
    out = tmp_path / "report.html"
    assert main(["report", str(run), "--n", "200", "--features", str(fx), "--guidance", "3", "--device", "cpu",
                 "--out", str(out)]) == 0
    page = _check_page(out, tmp_path, 3)  # training curves, grids, denoising strip
    assert "samples beside real images" in embedded_images(page)
    assert re.search(r"<td>FID</td><td class=num>[0-9.]+</td><td class=num>[0-9.]+</td>", page)
    assert "class accuracy" in page and "images, step 6" in page and "One row per class" in page
    # images guide on t in [0.3, 1] by default: the grids, the caption and the FID table (with the sampler it was
    # made with) say so, and the null is evaluated less
    assert "w = 3 on t in [0.3, 1] pulls harder" in page and "200 samples (midpoint, 8 steps, guidance 3 on t in " \
        "[0.3, 1])" in page
    cost = re.search(r"32 NFE, (\d+) network evaluations \(guided\)", page)
    assert cost and 32 < int(cost.group(1)) < 64, cost
    # guided the whole way when asked
    assert main(["report", str(run), "--n", "200", "--features", str(fx), "--guidance", "3", "--guidance-interval",
                 "0,1", "--device", "cpu", "--out", str(out)]) == 0
    page = out.read_text()
    assert "w = 3 pulls harder" in page and "64 network evaluations" in page
    assert "200 samples (midpoint, 8 steps, guidance 3)" in page


def test_molecule_report_shows_molecules_beside_real_ones_and_the_data_row(tmp_path):
    pytest.importorskip("rdkit")
    pytest.importorskip("matplotlib")
    modality = get_modality("molecules")
    spec, train_flags, _ = modality.example(tmp_path)
    run = tmp_path / "mols"
    assert main(["train", "--data", spec, "--out", str(run), *FAST, *train_flags]) == 0
    out = tmp_path / "report.html"
    assert main(["report", str(run), "--n", "16", "--device", "cpu", "--out", str(out)]) == 0
    # each 3-D view keeps its cubic axes box, in which a three-atom molecule is small
    page = _check_page(out, tmp_path, 3, margin=0.15)  # training curves, generated, real
    assert {"generated molecules", "real molecules"} <= set(embedded_images(page))
    assert "data (training conformers)" in page and "molecule stability" in page
    assert re.search(r"<td>model, step 6</td>(<td class=num>([0-9.]+%|-)</td>){5}", page)
