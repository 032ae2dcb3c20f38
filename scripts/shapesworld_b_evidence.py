"""Evidence for ShapesWorld model B: caption-vs-query on held-out scenes, beside model A.

Both models render the same held-out scenes from (1) the world's caption (model A's training style),
(2) the same caption with every colour, shape and size word swapped for a synonym (words model A never saw;
model B's captioner used them half the time) and (3) the user query, with the same starting noise; every
video is scored with the checklist built from the user query. Writes docs/figures/shapesworld_b_evidence.json
and docs/shapesworld_b.md:

    .venv/bin/python scripts/shapesworld_b_evidence.py --n 200
"""

from __future__ import annotations

import argparse
import json
import random
import sys

import numpy as np
import torch
from scipy import stats

from vpolib.analysis import mean_ci
from vpolib.config import ShapesWorldConfig
from vpolib.paths import REPO_ROOT, resolve
from vpolib.shapesworld import generate, load_pipeline, make_queries
from vpolib.shapesworld.model_b import MODEL_B_DIR, caption_b
from vpolib.shapesworld.reward import checklist, score_video

DOCS = REPO_ROOT / "docs"
PROMPTS = ("caption", "synonym caption", "query")


def pass_rates(pipe, items: list[dict], seed: int, steps: int, guidance: float) -> dict[str, np.ndarray]:
    """Per prompt kind, each item's share of the query's checklist weight passed. {kind: [N]}"""
    rng = random.Random(f"synonym-captions-{seed}")
    texts = {
        "caption": [it["caption"] for it in items],
        "synonym caption": [caption_b(it["scene"], rng, synonym_prob=1.0) for it in items],
        "query": [it["query"] for it in items],
    }
    out = {}
    for kind, prompts in texts.items():
        videos = generate(pipe, prompts, seed, steps, guidance)  # [N, F, H, W, 3]
        rates = []
        for it, v in zip(items, videos, strict=True):
            res = score_video(checklist(it["query"]), v)
            rates.append(res["score"] / res["max_score"])
        out[kind] = np.array(rates)
    return out, texts


def _fmt(ci) -> str:
    return f"{ci['mean']:.3f} [{ci['lo']:.3f}, {ci['hi']:.3f}]"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", default=MODEL_B_DIR)
    ap.add_argument("--model-a-dir", default=ShapesWorldConfig.model_dir)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--seed", type=int, default=2026, help="held-out scene seed (as for model A's evidence)")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--guidance", type=float, default=3.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--train-log", default="outputs/shapesworld-b-train/train.log")
    ap.add_argument("--no-write", action="store_true", help="print only (checking a checkpoint)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    items = make_queries(args.n, args.seed)
    summary = {"n": args.n, "steps": args.steps, "guidance": args.guidance, "models": {}}
    examples = None
    for name, path in (("A", args.model_a_dir), ("B", args.model_dir)):
        pipe = load_pipeline(resolve(path))
        rates, texts = pass_rates(pipe, items, args.seed, args.steps, args.guidance)
        examples = examples or [{k: texts[k][i] for k in PROMPTS} for i in range(3)]
        gap = rates["caption"] - rates["query"]
        summary["models"][name] = {
            "dir": str(path),
            "denoiser": type(pipe.denoiser).__name__,
            "vocab": len(pipe.tokenizer),
            "params_m": sum(p.numel() for m in (pipe.denoiser, pipe.text_encoder) for p in m.parameters())
            / 1e6,
            "mb": sum(f.stat().st_size for f in resolve(path).rglob("*") if f.is_file()) / 2**20,
            **{k: mean_ci(v, n_boot=2000) for k, v in rates.items()},
            "gap caption - query": mean_ci(gap, n_boot=2000),
            "gap caption - synonym caption": mean_ci(
                rates["caption"] - rates["synonym caption"], n_boot=2000
            ),
            "wilcoxon_p": float(stats.wilcoxon(rates["caption"], rates["query"]).pvalue)
            if np.any(gap)
            else 1.0,
        }
        print(name, json.dumps(summary["models"][name]), flush=True)
    summary["examples"] = examples
    if args.no_write:
        return 0
    log = resolve(args.train_log)
    lines = [json.loads(x) for x in log.read_text().splitlines() if x.startswith("{")] if log.exists() else []
    summary["training"] = lines[-1] if lines else None
    (DOCS / "figures").mkdir(parents=True, exist_ok=True)
    (DOCS / "figures" / "shapesworld_b_evidence.json").write_text(json.dumps(summary, indent=1))
    (DOCS / "shapesworld_b.md").write_text(render_doc(summary, argv))
    return 0


def render_doc(s: dict, argv) -> str:
    a, b = s["models"]["A"], s["models"]["B"]
    cmd = " ".join(sys.argv[1:] if argv is None else argv)
    t = s.get("training") or {}
    rows = "\n".join(
        f"| {k} | {_fmt(a[k])} | {_fmt(b[k])} |"
        for k in (*PROMPTS, "gap caption - query", "gap caption - synonym caption")
    )
    ex = "\n".join(f"- {k}: `{v}`" for k, v in s["examples"][0].items())
    return f"""# ShapesWorld model B: a second video model

Generated by `.venv/bin/python scripts/shapesworld_b_evidence.py {cmd}` (numbers below are from that run).

Model A (`vpolib/assets/shapesworld`, docs/shapesworld.md) and model B (`vpolib/assets/shapesworld_b`) differ
the way Open-Sora differs from CogVideoX: another denoiser and another text-encoder vocabulary, the same
world, frames, resolution and checklist reward.

| | model A | model B |
|---|---|---|
| denoiser | {a["denoiser"]} (conv UNet, cross-attention at the coarsest level) | {b["denoiser"]} (DiT over 2x2 patches, cross-attention in every block, adaLN-single) |
| training captions | the world's one fixed style | the same sentence, colour / shape / size words swapped for synonyms in half of them (`model_b.caption_b`) |
| word-level vocabulary | {a["vocab"]} tokens | {b["vocab"]} tokens (knows crimson, orb, tiny, ...) |
| parameters (denoiser + text encoder) | {a["params_m"]:.2f}M | {b["params_m"]:.2f}M |
| size on disk | {a["mb"]:.1f} MB | {b["mb"]:.1f} MB |

Model B was trained by `scripts/train_shapesworld.py --model b` (the same training code as model A, `vpolib/shapesworld/train.py`,
with `VARIANTS["b"]`): {t.get("step", "?")} steps, last logged loss {t.get("loss", "?")}, {t.get("s_per_step", "?")} s/step
(1 thread on the shared 2-core machine, about {t.get("step", 0) * t.get("s_per_step", 0) / 60:.0f} minutes, after about a minute rendering the
30,000 training clips):

    .venv/bin/python scripts/train_shapesworld.py --model b --work-dir outputs/shapesworld-b-train \\
        --install-to vpolib/assets/shapesworld_b --steps {t.get("step", 4500)} --threads 1

## Evidence: prompts matter on model B too
{s["n"]} held-out scenes (the same as model A's evidence); each rendered from three prompts with the same
starting noise ({s["steps"]} DDIM steps, guidance {s["guidance"]}), every video scored with the checklist built from the
**user query**. Mean share of checklist weight passed, 95% bootstrap CIs:

| prompt | model A | model B |
|---|---|---|
{rows}

Wilcoxon signed-rank p (caption vs query): model A {a["wilcoxon_p"]:.1e}, model B {b["wilcoxon_p"]:.1e}.

One scene's three prompts:
{ex}
"""


if __name__ == "__main__":
    sys.exit(main())
