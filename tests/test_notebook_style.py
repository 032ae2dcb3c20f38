"""The notebooks read like textbook chapters: a title first, one import cell, short cells, no stored outputs."""

import ast
import json

import pytest

from vpolib.paths import NOTEBOOK_DIR

MAX_LINES = 12  # a code cell's lines, blank ones included
# Notebooks not yet brought into line (skipped, with the reason); every notebook is in line now.
NOT_YET: set[str] = set()
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))


def cells(path):
    return [
        {**c, "text": "".join(c["source"])} for c in json.loads(path.read_text(encoding="utf-8"))["cells"]
    ]


def imports(text: str) -> bool:
    """Whether a cell holds an import statement (at any depth: an import inside an ``if`` counts)."""
    return any(isinstance(n, (ast.Import, ast.ImportFrom)) for n in ast.walk(ast.parse(text)))


def literal(node) -> bool:
    try:
        ast.literal_eval(node)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_style(path):
    if path.stem in NOT_YET:
        pytest.skip(f"{path.stem}: not yet brought into line (see NOT_YET)")
    nb = cells(path)
    assert nb[0]["cell_type"] == "markdown" and nb[0]["text"].startswith("# "), "the first cell is the title"
    code = [c for c in nb if c["cell_type"] == "code"]
    params = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(params) == 1 and params[0] is code[0], "the papermill parameters cell is the first code cell"
    for stmt in ast.parse(params[0]["text"]).body:
        assert isinstance(stmt, ast.Assign) and literal(stmt.value), f"not a literal: {ast.unparse(stmt)}"
    importing = [i for i, c in enumerate(code) if imports(c["text"])]
    assert importing == [1], f"one import cell, right after the parameters (import cells: {importing})"
    assert all(isinstance(s, (ast.Import, ast.ImportFrom)) for s in ast.parse(code[1]["text"]).body), (
        "the import cell holds imports only"
    )
    assert "start_stage(" in code[2]["text"], "the stage starts right after the imports"
    long = {
        i: n
        for i, c in enumerate(nb)
        if c["cell_type"] == "code" and (n := len(c["text"].split("\n"))) > MAX_LINES
    }
    assert not long, f"code cells over {MAX_LINES} lines (cell index: lines): {long}"
    stored = [i for i, c in enumerate(code) if c.get("outputs") or c.get("execution_count") is not None]
    assert not stored, f"code cells with stored outputs: {stored}"
    assert "stage.finish(" in code[-1]["text"], (
        "the last code cell finishes the stage, asserting its artifacts"
    )
    closing = nb[-1]["text"].lower()
    assert nb[-1]["cell_type"] == "markdown" and "what you should see" in closing and "try" in closing
