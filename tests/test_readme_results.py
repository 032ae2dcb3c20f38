"""The README's results section is exactly what scripts/results_table.py writes from the committed files."""

import subprocess
import sys

from vpolib.paths import REPO_ROOT


def test_readme_results_are_generated_from_the_committed_files():
    assert (REPO_ROOT / "docs/results/cpu/results.json").exists()
    res = subprocess.run(
        [sys.executable, "scripts/results_table.py", "--check"], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr
