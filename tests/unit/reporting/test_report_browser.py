"""The fixture report opened in headless Chromium: tables and decoded figures on screen.

Needs Debian's `chromium` (scripts/ensure-chromium.sh); without it this test fails, by design.
The screenshots stay in test-artifacts/ (git-ignored) for a person to look at.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
ARTIFACTS = REPO / "test-artifacts"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# Injected into a probe copy only (the report itself carries no script): after load, record
# each image's decoded width and where the figures section starts, for --dump-dom to show.
PROBE = ('<script>window.addEventListener("load",function(){var w=[];'
         'for(var i of document.images){w.push(i.naturalWidth)}var f=document.getElementById('
         '"figures").getBoundingClientRect();document.body.setAttribute("data-probe",'
         'w.join(",")+";"+Math.round(f.top+window.scrollY)+";"+document.body.scrollHeight);'
         '});</script></body>')


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("chromium is not installed: run scripts/ensure-chromium.sh (Debian package "
                    "`chromium`); the report's browser check cannot run without it")
    return found


def run_chromium(binary: str, tmp: Path, *args: str) -> str:
    done = subprocess.run([binary, *FLAGS, f"--user-data-dir={tmp}", *args],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def ink(image, box) -> tuple[float, float]:
    """(share of non-white pixels, share of coloured pixels) inside box."""
    import numpy as np

    pixels = np.asarray(image.convert("RGB").crop(box), dtype=int)
    inked = float((pixels.min(axis=2) < 235).mean())
    coloured = float((pixels.max(axis=2) - pixels.min(axis=2) > 60).mean())
    return inked, coloured


@pytest.mark.slow
def test_report_in_headless_chromium(rendered, tmp_path):
    from PIL import Image

    binary = chromium()
    html = rendered["out"]["report_html"]
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report.png"
    shot.unlink(missing_ok=True)
    run_chromium(binary, tmp_path / "a", f"--screenshot={shot}", "--window-size=1280,4000",
                 html.as_uri())

    probe = html.with_name("probe.html")
    probe.write_text(rendered["html"].replace("</body>", PROBE))
    # measured at the screenshot's width: a narrower window wraps more text, which would put
    # the figures lower than they are in the screenshot
    dom = run_chromium(binary, tmp_path / "b", "--virtual-time-budget=5000", "--dump-dom",
                       "--window-size=1280,4000", probe.as_uri())
    assert 'id="table-2-mnist"' in dom and 'class="paper-table"' in dom
    widths, figures_top, height = re.search(r'data-probe="([^"]*)"', dom).group(1).split(";")
    widths = [int(w) for w in widths.split(",")]
    assert len(widths) == len(list(rendered["out"]["figures"].glob("*.png")))
    assert all(w > 0 for w in widths), widths  # every embedded PNG decoded

    image = Image.open(shot)
    assert image.size == (1280, 4000)
    inked, _ = ink(image, (0, 300, 1280, 2000))   # summary and Tables 1-5
    assert inked > 0.05, f"table region nearly blank ({inked:.3f} inked)"

    full = ARTIFACTS / "report-full.png"
    run_chromium(binary, tmp_path / "c", f"--screenshot={full}",
                 f"--window-size=1280,{int(height) + 50}", html.as_uri())
    figures = Image.open(full)
    inked, coloured = ink(figures, (0, int(figures_top), 1280, int(height)))
    assert inked > 0.05 and coloured > 0.01, (inked, coloured)
