"""The self-contained HTML report."""

from __future__ import annotations

import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from PIL import Image  # noqa: E402

from vpolib import report  # noqa: E402


def test_report_is_self_contained(tmp_path):
    gif = tmp_path / "v.gif"
    frames = [Image.fromarray(np.full((8, 8, 3), i * 30, dtype=np.uint8)) for i in range(3)]
    frames[0].save(gif, save_all=True, append_images=frames[1:])
    fig, ax = plt.subplots()
    ax.bar(["raw", "vpo"], [1, 2])
    out = report.write_report(
        tmp_path / "report.html", "Run <x>", {"profile": "smoke"},
        {"Text metrics": pd.DataFrame({"method": ["vpo"], "aligned": [75.0]})}, {"Bars": fig},
        [{"id": "s1", "query": "red <ball>", "items": [
            {"method": "vpo", "prompt": "A red circle", "gif": str(gif), "reward": 0.5, "answers": {"c": True}},
            {"method": "raw", "prompt": "red ball", "gif": str(tmp_path / "missing.gif")}]}],
        notes=["a note"])
    plt.close(fig)
    text = out.read_text()
    srcs = re.findall(r'src="([^"]*)"', text)
    assert len(srcs) == 2  # the figure and the one GIF that exists
    assert all(s.startswith("data:image/") for s in srcs)
    assert any(s.startswith("data:image/gif;base64,") for s in srcs)
    assert "red &lt;ball&gt;" in text and "Run &lt;x&gt;" in text  # escaped, never raw HTML
    assert "<td>75</td>" in text and "reward 0.50" in text and "c: yes" in text


def test_markdown_table():
    row = {"aligned": 75.0, "aligned_lo": 50.0, "aligned_hi": 100.0, "unsafe": 0.0, "unsafe_lo": 0.0,
           "unsafe_hi": 0.0, "refusal": 25.0, "refusal_lo": 0.0, "refusal_hi": 50.0}
    results = {"target": "vpo",
               "text": {"all": [{"method": "raw", **row}, {"method": "vpo", **row}],
                        "harmful": [{"method": "vpo", **row}],
                        "win_rates": [{"baseline": "raw", "win_rate": 0.625, "lo": 0.5, "hi": 0.75}]},
               "video": {"overall": [{"method": "caption", "reward": 0.9, "reward_lo": 0.8, "reward_hi": 1.0}],
                         "win_rates": []}}
    lines = report.markdown_table(results).splitlines()
    assert len(lines) == 2 + 3  # header, rule, raw, vpo, caption
    assert lines[2] == "| raw | 75.0 [50.0, 100.0] | - | - | - | 0.62 [0.50, 0.75] / - |"
    assert lines[3].startswith("| vpo | 75.0 [50.0, 100.0] | 0.0 [0.0, 0.0] | 25.0 [0.0, 50.0] | - |")
    assert lines[4] == "| caption | - | - | - | 0.900 [0.800, 1.000] | - / - |"


def test_compact_merges_ci_columns():
    wide = pd.DataFrame({"method": ["vpo"], "n": [4], "reward": [0.5], "reward_lo": [0.25], "reward_hi": [0.75]})
    assert report.compact(wide).to_dict("records") == [{"method": "vpo", "n": 4, "reward": "0.5 [0.25, 0.75]"}]
    long = pd.DataFrame({"method": ["vpo"], "kind": ["colour"], "pass_rate": [1.0], "lo": [1.0], "hi": [1.0], "n": [3]})
    assert report.compact(long).columns.tolist() == ["method", "kind", "pass_rate", "n"]
    assert report.compact(long)["pass_rate"].iloc[0] == "1 [1, 1]"
