"""Use a trained optimizer: query in, video prompt out (and, for ShapesWorld, its video and checklist reward).

    python -m vpolib optimize --run outputs/cpu-B "a red ball rolls left"
    python -m vpolib optimize --model outputs/cpu-B/03_sft/model --file queries.txt --samples 4 --temperature 0.9
    echo "a dog surfing" | python -m vpolib optimize --run outputs/cpu-B --file -
    python -m vpolib optimize --run outputs/cpu-B --target shapes --render out/ "small blue circle moving up"

One JSON line per query on stdout: ``{"query", "prompts", "model", "target", "decoding"}`` (with ``--render``
also ``"videos"`` and ``"rewards"``). A user's mistake (a missing dir, a dir that holds no optimizer, an empty
query, a malformed JSONL line) ends with one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from vpolib.checkpoints import ADAPTER_CONFIG, load_optimizer
from vpolib.config import ShapesWorldConfig
from vpolib.generation import generate_prompts
from vpolib.io import read_json
from vpolib.templates import INSTRUCTIONS

STAGE_MODELS = ("05_dpo/model", "03_sft/model")  # a run's optimizers, preferred first (VPO, then SFT)
OPTIMIZER_FILE = "optimizer.json"  # written by `vpolib export` beside the weights: how to prompt the model
TARGET_NAMES = {"real": None, "shapes": "shapes"}  # --target -> the query source that names the video model
RENDER_STEPS = 10  # DDIM steps, as the cpu profile renders (configs/cpu.yaml: 10 and 20 score alike)


class UserError(ValueError):
    """A mistake in what the user asked for: reported as one line, never as a traceback."""


def is_optimizer_dir(path: Path) -> bool:
    """A saved optimizer: full weights (config.json) or a LoRA adapter (adapter_config.json), with a tokenizer."""
    has_weights = (path / "config.json").exists() or (path / ADAPTER_CONFIG).exists()
    return has_weights and (path / "tokenizer_config.json").exists()


def find_model(run: str | None = None, model: str | None = None, stage: str | None = None) -> Path:
    """The optimizer dir: ``model`` as given, or in a run dir the VPO model (05), else the SFT model (03);
    ``stage`` ("sft" / "vpo") picks one."""
    if bool(run) == bool(model):
        raise UserError("give one of --run RUN_DIR or --model MODEL_DIR")
    if model:
        path = Path(model)
        if not path.is_dir():
            raise UserError(f"--model {model}: no such directory")
        if not is_optimizer_dir(path):
            raise UserError(
                f"--model {model}: not an optimizer dir (no config.json/adapter_config.json + tokenizer)"
            )
        return path
    root = Path(run)
    if not root.is_dir():
        raise UserError(f"--run {run}: no such directory")
    wanted = {"vpo": STAGE_MODELS[:1], "sft": STAGE_MODELS[1:]}.get(stage or "", STAGE_MODELS)
    for rel in wanted:
        if is_optimizer_dir(root / rel):
            return root / rel
    raise UserError(
        f"--run {run}: no trained optimizer in it (looked for {', '.join(wanted)}); run stage 03 first"
    )


def instruction_of(model_dir: Path) -> str:
    """The instruction the model was trained with: from an exported model's optimizer.json, else from the run's
    manifest (the model dir sits in RUN/NN_stage/model), else the cpu profile's ``short``."""
    own = model_dir / OPTIMIZER_FILE
    if own.exists():
        return read_json(own)["instruction"]
    manifest = model_dir.resolve().parent.parent / "manifest.json"
    if manifest.exists():
        for stage in read_json(manifest).get("stages", {}).values():
            name = (stage.get("config") or {}).get("instruction")
            if name in INSTRUCTIONS:
                return name
    return "short"


def read_queries(queries: list[str], file: str | None, stdin=None) -> tuple[list[str], int]:
    """``(queries, skipped blank lines)`` from arguments, or a file (one per line, or JSONL with ``query``;
    ``-`` reads stdin). An empty argument or a JSONL line without a query is a :class:`UserError`."""
    if file is None:
        for i, q in enumerate(queries, 1):
            if not q.strip():
                raise UserError(f"query {i} is empty")
        if not queries:
            raise UserError("no query: give queries as arguments, --file FILE, or --file - for stdin")
        return [q.strip() for q in queries], 0
    if file == "-":
        lines = (stdin or sys.stdin).read().splitlines()
    else:
        path = Path(file)
        if not path.is_file():
            raise UserError(f"--file {file}: no such file")
        lines = path.read_text(errors="replace").splitlines()
    out, blank, jsonl = [], 0, str(file).endswith(".jsonl")
    for n, line in enumerate(lines, 1):
        if not line.strip():
            blank += 1
            continue
        if jsonl:
            try:
                query = json.loads(line).get("query")
            except (ValueError, AttributeError):
                raise UserError(f"{file}:{n}: not a JSON object with a 'query'") from None
            if not isinstance(query, str) or not query.strip():
                raise UserError(f"{file}:{n}: no 'query' text")
            line = query
        out.append(line.strip())
    if not out:
        raise UserError(f"{file}: no query in it ({blank} blank lines)")
    return out, blank


def optimize(
    queries: list[str],
    model_dir: str | Path,
    target: str = "real",
    samples: int = 1,
    temperature: float = 0.0,
    max_new_tokens: int = 96,
    seed: int = 42,
    model=None,
    tokenizer=None,
) -> list[dict]:
    """Prompts for ``queries`` from the optimizer in ``model_dir``: greedy by default, or ``samples`` prompts at
    ``temperature`` (seeded per batch). ``model``/``tokenizer`` skip loading (the playground reuses them)."""
    if target not in TARGET_NAMES:
        raise UserError(f"--target must be one of {sorted(TARGET_NAMES)}, got {target!r}")
    if temperature <= 0 and samples != 1:
        raise UserError("--samples > 1 needs --temperature > 0 (greedy decoding gives one prompt)")
    model_dir = Path(model_dir)
    if model is None:
        model, tokenizer = load_optimizer(model_dir)
    instruction = instruction_of(model_dir)
    outs = generate_prompts(
        model,
        tokenizer,
        queries,
        n=samples,
        temperature=temperature,
        max_new_tokens=max_new_tokens,
        instruction=instruction,
        seed=seed,
        sources=[TARGET_NAMES[target]] * len(queries),
    )
    decoding = {
        "temperature": temperature,
        "samples": samples,
        "max_new_tokens": max_new_tokens,
        "seed": seed,
    }
    return [
        {"query": q, "prompts": p, "model": str(model_dir), "target": target, "decoding": decoding}
        for q, p in zip(queries, outs, strict=True)
    ]


def render(rows: list[dict], out_dir: str | Path, seed: int = 42, backend=None) -> list[dict]:
    """Render every prompt of ``rows`` in ShapesWorld, save GIFs under ``out_dir`` and score each video against
    its ORIGINAL query's checklist; adds ``videos`` (paths) and ``rewards`` (share of the checklist weight)."""
    from vpolib.video import ShapesWorldBackend  # diffusers: loaded only when a user renders

    sw = ShapesWorldConfig()
    backend = backend or ShapesWorldBackend(sw.model_dir, RENDER_STEPS, sw.guidance_scale)
    out_dir = Path(out_dir)
    flat = [(i, k, p) for i, r in enumerate(rows) for k, p in enumerate(r["prompts"])]
    videos = backend.render([p for _, _, p in flat], seed)  # [N, F, H, W, 3]
    rows = [{**r, "videos": [], "rewards": []} for r in rows]
    for (i, k, _), video in zip(flat, videos, strict=True):
        questions = backend.checklist(rows[i]["query"])
        res = backend.score(questions, video)
        path = out_dir / f"query{i:03d}_{k}.gif"
        backend.save(video, path)  # as stages 04 and 06 save theirs
        rows[i]["videos"].append(str(path))
        rows[i]["rewards"].append(round(res["score"] / res["max_score"], 4) if res["max_score"] else None)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vpolib optimize", description=__doc__.splitlines()[0])
    ap.add_argument("queries", nargs="*", help="queries (or use --file)")
    ap.add_argument("--run", help="a run dir: its VPO model (05), else its SFT model (03)")
    ap.add_argument("--model", help="an optimizer dir (a run's NN_stage/model, or an exported model)")
    ap.add_argument("--stage", choices=["sft", "vpo"], help="with --run: which of the run's models")
    ap.add_argument("--file", help="queries, one per line, or JSONL with 'query'; '-' reads stdin")
    ap.add_argument("--target", default="real", help="real (a real-world video model) | shapes (ShapesWorld)")
    ap.add_argument("--samples", type=int, default=1, help="prompts per query (needs --temperature > 0)")
    ap.add_argument("--temperature", type=float, default=0.0, help="0: greedy")
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument(
        "--render", metavar="OUT_DIR", help="ShapesWorld target: render each prompt, GIFs + reward"
    )
    args = ap.parse_args(argv)
    try:
        if args.render and args.target != "shapes":
            raise UserError("--render renders in ShapesWorld: add --target shapes")
        if args.samples < 1:
            raise UserError("--samples must be at least 1")
        model_dir = find_model(args.run, args.model, args.stage)
        queries, blank = read_queries(args.queries, args.file)
        if blank:
            print(f"skipped {blank} blank line(s)", file=sys.stderr)
        rows = optimize(
            queries, model_dir, args.target, args.samples, args.temperature, args.max_new_tokens, args.seed
        )
        if args.render:
            rows = render(rows, args.render, args.seed)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for row in rows:
        print(json.dumps(row, ensure_ascii=False))
    return 0
