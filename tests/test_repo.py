"""Repository hygiene: stripped notebooks with a literal parameters cell, deps in sync."""

import ast
import re
import tomllib

import nbformat
import pytest
import yaml

from vpolib.paths import NOTEBOOK_DIR, REPO_ROOT
from vpolib.run import discover_notebooks

NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stripped(path):
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.get("outputs"), f"{path.name} has outputs: strip it (nbstripout)"
            assert cell.get("execution_count") is None, f"{path.name} has execution counts"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_first_code_cell_is_literal_parameters(path):
    nb = nbformat.read(path, as_version=4)
    first = next(c for c in nb.cells if c.cell_type == "code")
    assert "parameters" in first.metadata.get("tags", []), (
        f"{path.name}: first code cell must be tagged parameters"
    )
    tree = ast.parse(first.source)
    names = set()
    for node in tree.body:
        assert isinstance(node, ast.Assign), f"{path.name}: parameters cell holds assignments only"
        ast.literal_eval(node.value)  # literals only: derived values belong in the next cell
        names |= {t.id for t in node.targets}
    assert {"profile", "run_dir", "overrides"} <= names


def test_notebooks_are_numbered_uniquely():
    assert len(discover_notebooks()) == len(NOTEBOOKS)


def _req_name(req: str) -> str:
    return re.split(r"[<>=!\[; ]", req, maxsplit=1)[0].lower()


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    wanted = {r for r in project["dependencies"]}
    for extra in project["optional-dependencies"].values():
        wanted |= set(extra)
    env = yaml.safe_load((REPO_ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert any(str(d).startswith("python=3.11") for d in env["dependencies"])
    # exact same requirement strings, so pins cannot drift apart
    assert sorted(p for p in pip if not p.startswith("-")) == sorted(wanted)
