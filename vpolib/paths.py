"""Where things live. Everything resolves from the package location, never the working directory."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent
CONFIG_DIR = REPO_ROOT / "configs"
NOTEBOOK_DIR = REPO_ROOT / "notebooks"
OUTPUT_DIR = REPO_ROOT / "outputs"
ASSETS_DIR = PACKAGE_DIR / "assets"


def resolve(path: str | os.PathLike) -> Path:
    """An absolute path; relative paths are taken relative to the repo root."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else (REPO_ROOT / p).resolve()


def data_root(configured: str | os.PathLike) -> Path:
    """The data folder: ``$VPO_DATA_DIR`` if set, else the configured path (default: the repo's data/)."""
    root = resolve(os.environ.get("VPO_DATA_DIR") or configured)
    if not root.is_dir():
        raise FileNotFoundError(
            f"data folder {root} not found: set data.root in the profile or $VPO_DATA_DIR "
            "to the folder holding vpo/ and vbench/"
        )
    return root
