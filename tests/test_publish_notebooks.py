"""scripts/publish_notebooks.py: a run's executed notebooks copied for a code host, large outputs left out."""

import importlib.util
import json
import subprocess

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


def git(repo, *args):
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout.strip()


def test_copies_become_the_tip_of_their_own_branch_and_main_is_untouched(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "t@example.com")
    git(repo, "config", "user.name", "t")
    (repo / "a.txt").write_text("main's file\n")
    git(repo, "add", "a.txt")
    git(repo, "commit", "-qm", "main")
    head, status = git(repo, "rev-parse", "HEAD"), git(repo, "status", "--porcelain")
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "01_data.ipynb").write_text("{}\n")
    (folder / "README.md").write_text(publish_notebooks.branch_readme({"run_id": "cpu-R", "profile": "cpu"}))
    first = publish_notebooks.commit_to_branch(folder, "notebooks", "first", repo=repo)
    assert git(repo, "ls-tree", "--name-only", "notebooks").split() == ["01_data.ipynb", "README.md"]
    assert "Run `cpu-R` (profile `cpu`" in git(repo, "show", "notebooks:README.md")
    (folder / "02_refine.ipynb").write_text("{}\n")
    second = publish_notebooks.commit_to_branch(folder, "notebooks", "second", repo=repo)
    assert git(repo, "rev-parse", f"{second}^") == first  # one commit on top of the last publish
    assert git(repo, "rev-list", "--count", "notebooks") == "2"  # its own history: main's commit is not in it
    assert git(repo, "rev-parse", "HEAD") == head and git(repo, "status", "--porcelain") == status
