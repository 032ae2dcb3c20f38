"""Write a stripped notebook from a percent-format script (a drafting aid; the .ipynb is what is committed).

    python scripts/py2nb.py draft.py notebooks/02_refine.ipynb

Cells start with ``# %%``; ``# %% [markdown]`` cells have their lines' leading ``# `` removed;
``# %% tags=["parameters"]`` tags the papermill parameters cell.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat


def convert(text: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    chunks = re.split(r"^# %%(.*)$", text, flags=re.M)
    for header, body in zip(chunks[1::2], chunks[2::2], strict=True):
        body = body.strip("\n")
        if "[markdown]" in header:
            lines = [re.sub(r"^# ?", "", line) for line in body.splitlines()]
            nb.cells.append(nbformat.v4.new_markdown_cell("\n".join(lines)))
        else:
            cell = nbformat.v4.new_code_cell(body)
            tags = re.search(r"tags=\[(.*?)\]", header)
            if tags:
                cell.metadata["tags"] = [t.strip(" \"'") for t in tags.group(1).split(",")]
            nb.cells.append(cell)
    for cell in nb.cells:  # stable ids keep diffs small
        cell.pop("id", None)
    nb.nbformat_minor = 4
    return nb


def main() -> None:
    src, dst = Path(sys.argv[1]), Path(sys.argv[2])
    nbformat.write(convert(src.read_text()), dst)
    print(f"wrote {dst}")


if __name__ == "__main__":
    main()
