"""Render a report in headless Chromium: how many of its images decoded, and a screenshot."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def render(page: Path, tmp_path: Path) -> tuple[str, Path]:
    """``(the <body> tag after load, a 1000 px wide screenshot)``; skips (or fails on CI) without Chromium."""
    browser = chromium()
    if browser is None:
        if os.environ.get("N2D_REQUIRE_CHROMIUM"):
            pytest.fail("N2D_REQUIRE_CHROMIUM is set but no chromium is installed")
        pytest.skip("chromium is not installed (CI installs it: .ci/run)")
    flags = [*FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([browser, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True,
                         timeout=120).stdout
    body = re.search(r"<body[^>]*>", dom).group(0)
    shot = tmp_path / "shot.png"
    subprocess.run([browser, *flags, "--window-size=1000,2400", f"--screenshot={shot}", page.as_uri()],
                   capture_output=True, timeout=120)
    return body, shot


def embedded_images(page: str) -> list[str]:
    """The alt texts of the page's embedded PNGs."""
    return re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,', page)


def blank_margins(page: str) -> dict[str, float]:
    """For each embedded PNG (by alt text), the largest share of its width or height that is a blank
    (uniform) band along one edge: a figure sized to its content has little."""
    import base64
    import io

    import numpy as np
    from PIL import Image

    out = {}
    for alt, data in re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,([^"]+)"', page):
        img = np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("L"), dtype=float)
        bg = img[0, 0]
        rows = np.abs(img - bg).max(1) > 8  # (H,) rows with content
        cols = np.abs(img - bg).max(0) > 8
        h, w = img.shape
        r, c = np.nonzero(rows)[0], np.nonzero(cols)[0]
        if not len(r) or not len(c):
            out[alt] = 1.0
            continue
        out[alt] = max(r[0] / h, (h - 1 - r[-1]) / h, c[0] / w, (w - 1 - c[-1]) / w)
    return out
