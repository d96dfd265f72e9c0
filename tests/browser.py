"""Headless Chromium (Debian's ``chromium`` package, installed by ``make browser``) for checking rendered pages."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

#: Flags for a headless, throwaway browser. ``--no-sandbox``: CI containers run as root, where Chromium's sandbox
#: cannot start; the pages are our own files.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
         "--hide-scrollbars", "--allow-file-access-from-files"]


def chromium() -> str:
    """The Chromium binary; fails (never skips) the test with the fix when it is missing."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.fail("headless Chromium is not installed: run `make browser` (Debian's chromium package)")
    return found


def rendered_dom(page: Path, profile: Path) -> str:
    """The page's DOM after Chromium loaded and rendered it."""
    done = subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
                          capture_output=True, text=True, timeout=120, check=True)
    return done.stdout


def screenshot(page: Path, out: Path, profile: Path, size: tuple[int, int] = (1200, 1600)) -> Path:
    """A PNG of the page as Chromium paints it."""
    subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}", f"--window-size={size[0]},{size[1]}",
                    f"--screenshot={out}", page.as_uri()], capture_output=True, timeout=120, check=True)
    return out


def has_colour(png: Path, rgb: tuple[int, int, int], tolerance: int = 12) -> bool:
    """Whether any pixel of ``png`` is ``rgb`` (within ``tolerance`` per channel)."""
    import numpy as np
    from PIL import Image

    pixels = np.asarray(Image.open(png).convert("RGB")).astype(int)
    return bool((np.abs(pixels - np.array(rgb)).max(axis=-1) <= tolerance).any())
