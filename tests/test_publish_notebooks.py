"""scripts/publish_notebooks.py: a run's executed notebooks copied for a code host, large outputs left out."""

import importlib.util
import json

import nbformat

from vpolib.paths import REPO_ROOT

spec = importlib.util.spec_from_file_location(
    "publish_notebooks", REPO_ROOT / "scripts" / "publish_notebooks.py"
)
publish_notebooks = importlib.util.module_from_spec(spec)
spec.loader.exec_module(publish_notebooks)


def executed(path, sizes):
    nb = nbformat.v4.new_notebook()
    nb.metadata["widgets"] = {"state": {}}
    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = [nbformat.v4.new_output("display_data", data={"text/plain": "a" * n}) for n in sizes]
    cell.outputs[0]["data"]["application/vnd.jupyter.widget-view+json"] = {"model_id": "m"}
    nb.cells = [nbformat.v4.new_markdown_cell("# t"), cell]
    path.parent.mkdir(parents=True)
    nbformat.write(nb, path)


def test_publish_keeps_small_outputs_and_notes_large_ones(tmp_path):
    run = tmp_path / "run"
    executed(run / "06_evaluate" / "06_evaluate.ipynb", [10, 5000])
    executed(run / "01_data" / "01_data.ipynb", [10])
    (run / "01_data" / "other.ipynb").write_text("{}")  # not a stage's executed copy: ignored
    rows = publish_notebooks.publish(run, tmp_path / "out", max_bytes=1000)
    assert [(name, replaced) for name, _, replaced in rows] == [
        ("01_data.ipynb", 0),
        ("06_evaluate.ipynb", 1),
    ]
    nb = nbformat.read(tmp_path / "out" / "06_evaluate.ipynb", as_version=4)
    small, large = nb.cells[1].outputs
    assert small["data"] == {"text/plain": "a" * 10} and "widgets" not in nb.metadata
    assert (
        large["output_type"] == "stream"
        and "left out of the published copy: cell 1 of run/06_evaluate" in large["text"]
    )


def test_published_copies_name_no_machine_path():
    text = json.dumps({"text": f"run dir {REPO_ROOT}/outputs/cpu-R and the root {REPO_ROOT}"})
    assert json.loads(publish_notebooks.relative_paths(text)) == {
        "text": "run dir outputs/cpu-R and the root ."
    }
