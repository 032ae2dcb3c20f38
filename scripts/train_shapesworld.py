"""Train the ShapesWorld video model once and install it as vpolib/assets/shapesworld.

Reproduces the committed weights (on a 2-core CPU, see docs/shapesworld.md for the time it took):

    .venv/bin/python scripts/train_shapesworld.py --work-dir outputs/shapesworld-train --threads 1

Model B (a transformer denoiser, its own caption vocabulary; docs/shapesworld.md, "Model B"):

    .venv/bin/python scripts/train_shapesworld.py --model b --work-dir outputs/shapesworld-b-train \
        --install-to vpolib/assets/shapesworld_b --steps 3000 --threads 1

Resumable: rerunning with the same --work-dir continues from the last checkpoint.
"""

from __future__ import annotations

import argparse
import shutil
import sys

import torch

from vpolib.paths import resolve
from vpolib.shapesworld.train import train


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work-dir", default="outputs/shapesworld-train", help="checkpoints and log")
    ap.add_argument("--install-to", default="vpolib/assets/shapesworld", help="where the final pipeline goes")
    ap.add_argument("--model", choices=["a", "b"], default="a", help="a: UNet (default); b: transformer")
    ap.add_argument("--steps", type=int, default=8000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--clips", type=int, default=30000)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    work = resolve(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    with open(work / "train.log", "a") as log_file:

        def log(line: str) -> None:
            print(line, file=log_file, flush=True)
            print(line, flush=True)

        train(
            work,
            n_clips=args.clips,
            steps=args.steps,
            batch=args.batch,
            lr=args.lr,
            seed=args.seed,
            log=log,
            model=args.model,
        )
    target = resolve(args.install_to)
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(work / "pipeline", target)
    print(f"installed {work / 'pipeline'} -> {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
