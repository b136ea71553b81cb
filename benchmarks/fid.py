"""The in-domain FID extractor: how well it classifies, where FID's floor lies, how FID responds.

Trains noise2data's FeatureNet on MNIST's 60k training images (validated on the 10k test images)
and on scikit-learn's digits (every fifth image held out), then prints, for each:

- the extractor's validation accuracy and training time;
- the floor: FID/KID between two disjoint real sets of the same size (train vs train, and
  train vs test, which also shows the small train/test shift);
- FID/KID of corrupted real images (Gaussian pixel noise, a 3x3 box blur, a 2-pixel shift), which
  must grow with the corruption: a metric that does not see these is not worth quoting.

    python benchmarks/fid.py --mnist ../shared/data/mnist
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from noise2data.data.images import LabelledImages, load_digits_images, load_mnist
from noise2data.metrics.features import train_feature_net
from noise2data.metrics.fid import image_quality


def corruptions(x: torch.Tensor, hi: float, g: torch.Generator) -> dict[str, torch.Tensor]:
    box = sum(torch.roll(x, (i, j), (2, 3)) for i in (-1, 0, 1) for j in (-1, 0, 1)) / 9
    out = {f"noise {s:g}": (x + s * hi * torch.randn(x.shape, generator=g)).clamp(0, hi) for s in (0.05, 0.1, 0.2, 0.4)}
    return out | {"blur 3x3": box, "shift 2px": torch.roll(x, (2, 2), (2, 3))}


def study(name: str, train: LabelledImages, val: LabelledImages, epochs: int, n: int) -> dict:
    t0 = time.perf_counter()
    ext = train_feature_net(train, val, epochs=epochs, seed=0)
    secs = time.perf_counter() - t0
    g = torch.Generator().manual_seed(0)
    perm = torch.randperm(len(train.images), generator=g)
    ref, other = train.images[perm[:n]], train.images[perm[n:2 * n]]
    m = min(n, len(val.images))
    rows = {"train vs train (floor)": image_quality(ext, other, ref),
            "test vs train": image_quality(ext, val.images[:m], ref[:m])}
    for label, x in corruptions(other, train.value_range[1], g).items():
        rows[label] = image_quality(ext, x, ref)
    print(f"\n{name}: extractor trained {epochs} epochs on {len(train.images)} images in {secs:.0f} s, "
          f"validation accuracy {ext.val_accuracy:.4f} on {len(val.images)}; data sha256 {ext.data_hash[:12]}")
    print(f"{'images vs reference':<24} {'n':>6} {'FID':>9} {'KID':>9}")
    for label, r in rows.items():
        print(f"{label:<24} {r['n']:6d} {r['fid']:9.4f} {r['kid']:9.5f}")
    return {"val_accuracy": ext.val_accuracy, "train_seconds": secs, "data_sha256": ext.data_hash,
            "rows": {k: {"n": v["n"], "fid": v["fid"], "kid": v["kid"]} for k, v in rows.items()}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mnist", help="folder of the MNIST IDX files (skipped when not given)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--n", type=int, default=5000, help="images per set (MNIST)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default="benchmarks/results/fid.json")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    res = {}
    d = load_digits_images()
    held = torch.arange(len(d.labels)) % 5 == 0
    res["digits"] = study("digits", LabelledImages(d.images[~held], d.labels[~held], d.value_range, "digits-train"),
                          LabelledImages(d.images[held], d.labels[held], d.value_range, "digits-val"), 30, 600)
    if args.mnist:
        res["mnist"] = study("mnist", load_mnist(args.mnist, "train"), load_mnist(args.mnist, "test"),
                             args.epochs, args.n)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
