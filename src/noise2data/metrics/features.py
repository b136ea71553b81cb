"""In-domain feature extractors for FID/KID, trained here on a labelled image dataset.

Inception weights cannot be downloaded on an offline machine, and Inception features of 8x8 or
28x28 digits are a poor judge anyway. :func:`train_feature_net` trains a small CNN classifier
(minutes on a CPU) and FID/KID use its penultimate features. The extractor is saved with its
validation accuracy and a SHA-256 of the images it was trained on, and every FID reports both, so
two FIDs are only compared when they come from the same extractor. A TorchScript module that maps
images to features (e.g. an Inception network a user already has) can be loaded instead.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import __version__
from ..data.images import LabelledImages
from ..errors import UserError


@dataclass(frozen=True)
class FeatureNetConfig:
    """``image_shape = (C, H, W)`` (or ``(C, T, H, W)`` for clips, ``dims = 3``); ``value_range``: the units
    images arrive in (mapped to [-1, 1])."""

    image_shape: tuple[int, ...]
    num_classes: int
    value_range: tuple[float, float]
    width: int = 32
    feature_dim: int = 128
    dims: int = 2


class FeatureNet(nn.Module):
    """conv-conv-pool x2, global average pool, a ``feature_dim`` layer (the features), a classifier."""

    def __init__(self, config: FeatureNetConfig) -> None:
        super().__init__()
        self.config = config
        c, w = config.image_shape[0], config.width
        conv, pool, mean = ((nn.Conv2d, nn.MaxPool2d, nn.AdaptiveAvgPool2d) if config.dims == 2 else
                            (nn.Conv3d, nn.MaxPool3d, nn.AdaptiveAvgPool3d))  # images, or clips (C, T, H, W)
        self.body = nn.Sequential(
            conv(c, w, 3, padding=1), nn.GroupNorm(8, w), nn.GELU(),
            conv(w, w, 3, padding=1), nn.GroupNorm(8, w), nn.GELU(), pool(2, ceil_mode=True),
            conv(w, 2 * w, 3, padding=1), nn.GroupNorm(8, 2 * w), nn.GELU(),
            conv(2 * w, 2 * w, 3, padding=1), nn.GroupNorm(8, 2 * w), nn.GELU(),
            mean(1), nn.Flatten(),
            nn.Linear(2 * w, config.feature_dim), nn.GELU(),
        )
        self.head = nn.Linear(config.feature_dim, config.num_classes)

    def normalize(self, x: Tensor) -> Tensor:
        lo, hi = self.config.value_range
        return (x - lo) / (hi - lo) * 2 - 1

    def features(self, x: Tensor) -> Tensor:
        """``(B, C, H, W)`` images (or ``(B, C, T, H, W)`` clips) in ``value_range`` units -> ``(B, feature_dim)``."""
        if tuple(x.shape[1:]) != tuple(self.config.image_shape):
            raise UserError(f"the feature extractor takes images of shape {tuple(self.config.image_shape)}, "
                            f"got {tuple(x.shape[1:])}")
        return self.body(self.normalize(x))

    def forward(self, x: Tensor) -> Tensor:
        """Class logits ``(B, num_classes)``."""
        return self.head(self.features(x))


@dataclass
class FeatureExtractor:
    """A trained extractor and what it was trained on."""

    net: nn.Module
    val_accuracy: float | None
    data_hash: str
    description: str

    @torch.no_grad()
    def features(self, x: Tensor, batch_size: int = 1000) -> Tensor:
        """``(N, C, H, W)`` -> float64 ``(N, F)``."""
        self.net.eval()
        feats = self.net.features if hasattr(self.net, "features") else self.net
        return torch.cat([feats(x[i:i + batch_size].float()).double() for i in range(0, len(x), batch_size)])

    @torch.no_grad()
    def predict(self, x: Tensor, batch_size: int = 1000) -> Tensor:
        """Predicted classes ``(N,)`` (only for a trained classifier)."""
        if not isinstance(self.net, FeatureNet):
            raise UserError("class accuracy needs a classifier trained by noise2data, not a TorchScript extractor")
        self.net.eval()
        return torch.cat([self.net(x[i:i + batch_size].float()).argmax(1) for i in range(0, len(x), batch_size)])

    @property
    def value_range(self) -> tuple[float, float]:
        """The pixel units this extractor takes (a TorchScript extractor is taken to want [-1, 1])."""
        cfg = getattr(self.net, "config", None)
        return tuple(cfg.value_range) if isinstance(cfg, FeatureNetConfig) else (-1.0, 1.0)

    def from_unit(self, x: Tensor) -> Tensor:
        """Images in [-1, 1] (as noise2data's image runs have them) -> this extractor's units."""
        lo, hi = self.value_range
        return (x.clamp(-1, 1) + 1) / 2 * (hi - lo) + lo

    def info(self) -> dict:
        return {"extractor": self.description, "val_accuracy": self.val_accuracy, "data_sha256": self.data_hash}


def fingerprint(images: Tensor, labels: Tensor) -> str:
    """SHA-256 of the images and labels (their bytes, shapes and dtypes)."""
    h = hashlib.sha256()
    for t in (images, labels):
        t = t.contiguous().cpu()
        h.update(f"{tuple(t.shape)}{t.dtype}".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def train_feature_net(train: LabelledImages, val: LabelledImages, *, epochs: int = 3, batch_size: int = 128,
                      lr: float = 2e-3, seed: int = 0, width: int = 32, feature_dim: int = 128,
                      log: bool = False) -> FeatureExtractor:
    """Train a :class:`FeatureNet` classifier on ``train`` and measure its accuracy on ``val``.

    Light augmentation (random shifts of 1 pixel per 14) keeps the features from keying on exact
    pixel positions. Returns the extractor with its validation accuracy and the data's hash.
    """
    if train.images.shape[1:] != val.images.shape[1:]:
        raise UserError(f"train and validation images differ in shape: {tuple(train.images.shape[1:])} "
                        f"vs {tuple(val.images.shape[1:])}")
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    cfg = FeatureNetConfig(tuple(train.images.shape[1:]), max(train.num_classes, val.num_classes),
                           train.value_range, width, feature_dim, dims=train.images.ndim - 2)
    net = FeatureNet(cfg)
    steps = epochs * max(1, len(train.images) // batch_size)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    shift = max(1, cfg.image_shape[-2] // 14)  # 1 pixel on 8x8 digits, 2 on 28x28 MNIST
    net.train()
    for step in range(steps):
        idx = torch.randint(0, len(train.images), (batch_size,), generator=g)
        x = train.images[idx]
        dx, dy = (int(v) for v in torch.randint(-shift, shift + 1, (2,), generator=g))
        x = torch.roll(x, shifts=(dy, dx), dims=(-2, -1))
        loss = F.cross_entropy(net(x), train.labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if log and (step + 1) % 200 == 0:
            print(f"feature net step {step + 1}/{steps} loss {loss.item():.4f}")
    ext = FeatureExtractor(net.eval(), None, fingerprint(train.images, train.labels),
                           f"noise2data FeatureNet (width {width}, {feature_dim} features) trained on {train.name}")
    ext.val_accuracy = float((ext.predict(val.images) == val.labels).double().mean())
    return ext


def save_extractor(ext: FeatureExtractor, path: str | Path) -> Path:
    """``path`` (.safetensors) holds the weights; ``path`` + ``.json`` the config, accuracy and data hash."""
    import safetensors.torch as st
    if not isinstance(ext.net, FeatureNet):
        raise UserError("only extractors trained by noise2data can be saved")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    st.save_file({k: v.contiguous() for k, v in ext.net.state_dict().items()}, str(tmp))
    tmp.replace(path)
    meta = {"config": asdict(ext.net.config), "val_accuracy": ext.val_accuracy, "data_sha256": ext.data_hash,
            "description": ext.description, "noise2data_version": __version__}
    Path(str(path) + ".json").write_text(json.dumps(meta, indent=2))
    return path


def load_extractor(path: str | Path) -> FeatureExtractor:
    """A saved FeatureNet (``.safetensors`` beside its ``.json``) or a TorchScript module (``.pt``)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"feature extractor not found: {path} (train one with 'noise2data features')")
    meta_file = Path(str(path) + ".json")
    if meta_file.is_file():
        import safetensors.torch as st
        meta = json.loads(meta_file.read_text())
        c = meta["config"]
        cfg = FeatureNetConfig(tuple(c["image_shape"]), c["num_classes"], tuple(c["value_range"]),
                               c["width"], c["feature_dim"], c.get("dims", 2))
        net = FeatureNet(cfg)
        try:
            net.load_state_dict(st.load_file(str(path)))
        except Exception as exc:  # noqa: BLE001 - safetensors raises its own types
            raise UserError(f"{path} is not a valid FeatureNet checkpoint ({str(exc).splitlines()[0]})") from None
        return FeatureExtractor(net.eval(), meta["val_accuracy"], meta["data_sha256"], meta["description"])
    try:
        net = torch.jit.load(str(path), map_location="cpu")
    except Exception:  # noqa: BLE001
        raise UserError(f"{path} is neither a noise2data extractor (no {meta_file.name}) nor a TorchScript "
                        "module") from None
    return FeatureExtractor(net.eval(), None, "unknown", f"TorchScript module {path.name}")
