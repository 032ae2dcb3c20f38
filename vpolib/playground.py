"""The playground: type a query, see the raw query, SFT's and VPO's prompts side by side, and on ShapesWorld their
videos and checklist answers (ipywidgets). Headless (papermill) it shows the same for one example query."""

from __future__ import annotations

import base64
from pathlib import Path

import ipywidgets as widgets
import pandas as pd
from IPython.display import HTML, display

from vpolib.checkpoints import load_optimizer
from vpolib.optimize import STAGE_MODELS, is_optimizer_dir, optimize, render
from vpolib.video import ShapesWorldBackend


class Playground:
    """The run's optimizers (SFT, VPO), loaded once; :meth:`compare` answers one query."""

    def __init__(self, run_dir: str | Path, model_dir: str, steps: int, guidance: float, seed: int = 42):
        run_dir = Path(run_dir)
        names = {"05_dpo/model": "vpo", "03_sft/model": "sft"}
        self.models = {
            names[rel]: (run_dir / rel, *load_optimizer(run_dir / rel))
            for rel in reversed(STAGE_MODELS)
            if is_optimizer_dir(run_dir / rel)
        }
        self.video = ShapesWorldBackend(model_dir, steps, guidance)
        self.seed = seed

    def rewrite(self, query: str, target: str = "shapes", out_dir: str | Path = "playground") -> pd.DataFrame:
        """One row per method (raw, sft, vpo): its prompt and, on ShapesWorld, the video's reward and answers."""
        rows = [{"method": "raw", "query": query, "prompts": [query]}]
        for name, (path, model, tok) in self.models.items():
            [row] = optimize([query], path, target, seed=self.seed, model=model, tokenizer=tok)
            rows.append({"method": name, **row})
        if target == "shapes":
            rows = render(rows, out_dir, self.seed, backend=self.video)
        return pd.DataFrame(rows)


def _gif(path: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<img src="data:image/gif;base64,{data}" width="128">'


def show(frame: pd.DataFrame) -> HTML:
    """The comparison as an HTML table: method, prompt, and on ShapesWorld the GIF and the checklist reward."""
    cells = []
    for _, r in frame.iterrows():
        video = _gif(r["videos"][0]) if "videos" in r and isinstance(r["videos"], list) else ""
        reward = f"{r['rewards'][0]:.2f}" if "rewards" in r and isinstance(r["rewards"], list) else ""
        cells.append(
            f"<tr><td>{r['method']}</td><td>{r['prompts'][0]}</td><td>{video}</td><td>{reward}</td></tr>"
        )
    head = "<tr><th>method</th><th>prompt</th><th>video</th><th>reward</th></tr>"
    return HTML(f"<table>{head}{''.join(cells)}</table>")


def widget(play: Playground, example: str, out_dir: str | Path) -> widgets.VBox:
    """A text box, a target switch and a button; each click shows :func:`show` of :meth:`Playground.compare`."""
    box = widgets.Text(value=example, description="query", layout=widgets.Layout(width="80%"))
    target = widgets.ToggleButtons(options=["shapes", "real"], value="shapes", description="video model")
    button, output = widgets.Button(description="optimize"), widgets.Output()

    def on_click(_):
        with output:
            output.clear_output()
            display(show(play.rewrite(box.value, target.value, out_dir)))

    button.on_click(on_click)
    return widgets.VBox([box, target, button, output])
