"""Write the README's results section from a committed results.json (never typed by hand).

    .venv/bin/python scripts/results_table.py                 # docs/results/cpu/results.json -> README.md
    .venv/bin/python scripts/results_table.py --check         # exit 1 if the README is not what the file gives

The section sits between ``<!-- results:begin -->`` and ``<!-- results:end -->`` in README.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
ORDER = ["raw", "rule", "fewshot", "sft", "vpo", "vpo-paper", "vpo-text", "vpo-video", "caption"]
LABELS = {
    "raw": "raw query",
    "rule": "rule expansion",
    "fewshot": "teacher few-shot",
    "sft": "SFT",
    "vpo": "**VPO**",
    "vpo-paper": "VPO, the paper's recipe (one round)",
    "vpo-text": "VPO without video feedback",
    "vpo-video": "VPO without text feedback",
    "caption": "caption (oracle)",
}


def ci(row: dict | None, key: str, fmt: str = "{:.3f}") -> str:
    if not row or row.get(key) is None:
        return "-"
    return f"{fmt.format(row[key])} [{fmt.format(row[key + '_lo'])}, {fmt.format(row[key + '_hi'])}]"


def win(row: dict | None) -> str:
    return "-" if not row else f"{row['win_rate']:.2f} [{row['lo']:.2f}, {row['hi']:.2f}] (n={row['n']})"


def by(rows: list[dict], key: str = "method") -> dict[str, dict]:
    return {r[key]: r for r in rows}


def against(row: dict, null: float) -> str:
    """Where a CI ``[lo, hi]`` lies against the no-difference value (0.5 for a win rate, 0 for a difference)."""
    if row["lo"] > null:
        return f"the CI lies **above {null:g}**"
    if row["hi"] < null:
        return f"the CI lies **below {null:g}** (worse)"
    return f"the CI **includes {null:g}** (no difference shown)"


def verdicts(res: dict) -> list[str]:
    """What the method should show (the paper's claims), each checked on the numbers and said plainly."""
    video, text_h = by(res["video"]["overall"]), by(res["text"]["harmful"])
    vpo_sft = by(res["video"]["win_rates"], "baseline").get("sft")
    sft_raw = next(iter(res["video"].get("sft_over_raw") or []), None)
    out = []
    chain = [m for m in ("raw", "fewshot", "sft", "vpo") if m in video]
    rewards = [video[m]["reward"] for m in chain]
    holds = len(chain) == 4 and all(a < b for a, b in zip(rewards, rewards[1:], strict=False))
    out.append(
        f"- Video reward ordering raw < few-shot < SFT < VPO: **{'holds' if holds else 'does not hold'}** "
        f"({', '.join(f'{m} {r:.3f}' for m, r in zip(chain, rewards, strict=True))})."
    )
    text_vpo_sft = by(res["text"]["win_rates"], "baseline").get("sft")
    text_sft_raw = next(iter(res["text"].get("sft_over_raw") or []), None)
    for name, row in (
        ("video win rate of VPO over SFT", vpo_sft),
        ("video win rate of SFT over raw", sft_raw),
        ("text-score win rate of VPO over SFT", text_vpo_sft),
        ("text-score win rate of SFT over raw", text_sft_raw),
    ):
        if row:
            verdict = against(row, 0.5)
            out.append(
                f"- Paired {name}: {row['win_rate']:.2f} [{row['lo']:.2f}, {row['hi']:.2f}]: {verdict}."
            )
    for row in res["text"].get("aligned_diff") or []:
        verdict = against(row, 0)
        out.append(
            f"- Paired difference in % passing every principle, {row['a']} minus {row['b']} (n={row['n']}): "
            f"{100 * row['diff']:+.1f} points [{100 * row['lo']:+.1f}, {100 * row['hi']:+.1f}]: {verdict}."
        )
    if all(m in text_h for m in ("sft", "vpo")):
        u = {m: text_h[m]["unsafe"] for m in ("sft", "vpo")}
        out.append(
            f"- Unsafe prompts on the harmful subset, VPO <= SFT: **{'holds' if u['vpo'] <= u['sft'] else 'does not hold'}** "
            f"({u['vpo']:.1f}% vs {u['sft']:.1f}%)."
        )
    if all(m in text_h for m in ("raw", "sft", "vpo")):
        u = {m: text_h[m]["unsafe"] for m in ("raw", "sft", "vpo")}
        order = u["vpo"] < u["sft"] < u["raw"]
        out.append(
            f"- Unsafe prompts on the harmful subset (n={text_h['vpo']['n']}): raw {u['raw']:.1f}%, "
            f"SFT {u['sft']:.1f}%, VPO {u['vpo']:.1f}%: VPO < SFT < raw **{'holds' if order else 'does not hold'}**."
        )
    return out


def evaluation_lines(res: dict) -> list[str]:
    """How much the paired comparisons can move (results files from issue 24 on; older ones give nothing): the
    share of held-out prompts each trained method changed from SFT's, and sampled decoding beside greedy."""
    out = []
    changed = {k: by(res[k].get("changed_vs_sft") or []) for k in ("text", "video")}
    for m in dict.fromkeys([*changed["text"], *changed["video"]]):
        parts = [
            f"{kind} {100 * r['share']:.0f}% of {r['n']}"
            for kind, r in ((k, changed[k].get(m)) for k in ("text", "video"))
            if r and r.get("share") is not None
        ]
        if parts:
            out.append(
                f"- Held-out prompts of {LABELS.get(m, m)} that differ from SFT's: {', '.join(parts)}."
            )
    sampled = res["video"].get("sampled") or {}
    rows = {(r["method"], r["decoding"]): r for r in sampled.get("overall") or []}
    wins = by(sampled.get("win_rates") or [], "decoding")
    if ("vpo", "sampled") in rows and ("sft", "sampled") in rows:
        line = (
            f"- Sampled decoding ({sampled.get('samples')} prompts per ShapesWorld query at temperature "
            f"{sampled.get('temperature')}, {sampled.get('seeds')} noise seed(s) each): video reward VPO "
            f"{ci(rows['vpo', 'sampled'], 'reward')} vs SFT {ci(rows['sft', 'sampled'], 'reward')}"
        )
        if "sampled" in wins:
            line += (
                f"; paired win rate of VPO over SFT {win(wins['sampled'])}: {against(wins['sampled'], 0.5)}"
            )
        out.append(line + ".")
    return out


def preference_lines(res: dict) -> list[str]:
    """The preference stage (results files from issue 24 on): each round's dev reward, the dev prompts it changed,
    its pairs per track and what it cost, then the pairs each DPO model trained on."""
    pref = res.get("preference")
    if not pref:
        return []
    fmt = lambda v, f="{:,}": "-" if v is None else f.format(v)  # noqa: E731
    lines = [
        "",
        f"The preference stage ({pref['pairing']} pairs; loss {' + '.join(f'{w:g} x {t}' for t, w in pref['loss_weights'].items())}"
        "; sft is RPO's NLL term): each round's reward on "
        f"the dev split ({pref['n_dev']} DPO-pool ShapesWorld queries 04 does not render; greedy prompt, mean over "
        "the feedback seeds; round 0 is the SFT model), the share of dev prompts it changed, "
        + (
            f"the share of the greedy prompts for {pref['n_dev_text']} real dev queries (DPO-pool queries 04 never "
            "samples, a fifth harmful-flagged) that the judge passes, "
            if pref.get("n_dev_text")
            else ""
        )
        + "the pairs it made and what it cost:",
        "",
        "| round | dev reward | dev prompts changed | real dev: judge passes | text pairs | video pairs | trained on | "
        "videos rendered | tokens generated | training s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in pref["rounds"]:
        lines.append(
            f"| {r['round']} | {r['dev_reward']:.3f} | {fmt(r['dev_changed'], '{:.0%}')} | "
            f"{fmt(r.get('dev_text_pass'), '{:.0%}')} | {fmt(r['text_pairs'])} | "
            f"{fmt(r['video_pairs'])} | {fmt(r['train_pairs'])} | {fmt(r['videos_rendered'])} | "
            f"{fmt(r['tokens_generated'])} | {fmt(r['train_s'], '{:.0f}')} |"
        )
    trained = ", ".join(
        f"{LABELS.get(m, m)} {v['train_pairs']} (+{v['eval_pairs']} eval)"
        for m, v in pref["variants"].items()
    )
    return [*lines, "", f"Pairs each DPO model trained on (the VPO model: its last round): {trained}."]


def sizes_lines(sizes: dict) -> list[str]:
    """The preference stage's data sizes on the dev split (scripts/dev_sizes.py --json): one DPO round from SFT per
    variant, each size of the profile cut or grown alone."""
    fmt = lambda v, f="{:,}": "-" if v is None else f.format(v)  # noqa: E731
    gain = lambda g: "-" if not g else f"{g['diff']:+.3f} [{g['lo']:+.3f}, {g['hi']:+.3f}]"  # noqa: E731
    spent = lambda d: "-" if not d else f"{sum(d.values()):.0f}"  # noqa: E731
    lines = [
        "",
        f"**How much preference data** (`scripts/dev_sizes.py`, run `{sizes['run']}`'s stage 04; dev split only): "
        "one preference round from the SFT model on the pairs of each variant, every size of the profile cut or "
        "grown alone (`xN`: N times the ShapesWorld queries, the others fresh ones past every split, sampled, "
        "rendered and judged here from the SFT model; "
        f"`seeds 4`: two more noise seeds rendered here), scored on {sizes['n_dev']} ShapesWorld dev queries with "
        f"{sizes['seeds']} noise seed(s) each (paired differences, 95% bootstrap CIs) and {sizes['n_dev_text']} real "
        "dev queries (judge passes; harmful-flagged ones the judge still finds unsafe):",
        "",
        "| variant | ShapesWorld queries | real queries | samples each | seeds | videos | text pairs | video pairs | "
        "trained on | training s | data s added | dev reward | minus SFT | minus the profile's | dev prompts "
        "changed | real dev: judge passes | harmful unsafe |",
        "|" + "---|" * 17,
    ]
    for r in sizes["rows"]:
        lines.append(
            f"| {r['variant']} | {fmt(r.get('queries'))} | {fmt(r.get('text_only'))} | {fmt(r.get('k'))} | "
            f"{fmt(r.get('seeds'))} | {fmt(r.get('videos'))} | {fmt(r.get('text_pairs'))} | "
            f"{fmt(r.get('video_pairs'))} | {fmt(r.get('train_pairs'))} | {fmt(r.get('train_s'), '{:.0f}')} | "
            f"{spent(r.get('data_s'))} | {r['dev_reward']:.3f} | {gain(r.get('vs_sft'))} | "
            f"{gain(r.get('vs_profile'))} | {fmt(r.get('dev_changed'), '{:.0%}')} | "
            f"{fmt(r.get('dev_text_pass'), '{:.0%}')} | {fmt(r.get('dev_text_unsafe_harmful'), '{:.0%}')} |"
        )
    return lines


def renamed(obj):
    """A stage-02 metrics file written before the principle "accurate" took the paper's name, "aligned"."""
    text = json.dumps(obj).replace('"accurate"', '"aligned"').replace('"fails_accurate"', '"fails_aligned"')
    return json.loads(text)


def validation_lines(metrics: dict) -> list[str]:
    """The judge validation table from stage 02's metrics.json."""
    val = metrics.get("judge_validation") or {}
    if not val:
        return []
    lines = [
        "",
        f"**The judge, measured** (`{metrics.get('judge')}`; stage 02 on labelled items built from VBench and "
        "ShapesWorld, `vpolib/validation.py`): share of items failing each principle, per kind.",
        "",
        "| kind | should fail | n | passes all | fails harmless | fails aligned | fails helpful |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in val["by_kind"]:
        lines.append(
            f"| {r['kind']} | {r['expected_fail']} | {r['n']} | "
            f"{r['passed_all']:.2f} | {r['fails_harmless']:.2f} | {r['fails_aligned']:.2f} | "
            f"{r['fails_helpful']:.2f} |"
        )
    lines += [
        "",
        "| principle | items built to break it | detection rate | false alarms on clean items |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {r['principle']} | {r['n_broken']} | {r['detection_rate']:.2f} | {r['false_alarm_rate']:.2f} |"
        for r in val["rates"]
    ]
    modes = metrics.get("shapes_teacher_modes") or []
    if modes:
        lines += [
            "",
            "**The ShapesWorld teacher's failure modes** (stage 02: share of its prompts with each, and how "
            "often the text judge still passed them):",
            "",
            "| failure mode | rate | judge pass rate |",
            "|---|---|---|",
        ]
        lines += [f"| {r['mode']} | {r['rate']:.2f} | {r['judge pass rate']:.2f} |" for r in modes]
    return lines


def cpu_label(cpu: dict | None) -> str:
    """ "AMD EPYC (avx512_bf16)": the processor and whether it computes bf16 natively (from vpolib.precision);
    "..., torch held to AVX2 kernels" where torch ran below the CPU's flags (``ATEN_CPU_CAPABILITY=avx2
    ONEDNN_MAX_CPU_ISA=AVX2``: a stand-in for an AVX2-only CPU)."""
    cpu = cpu or {}
    native = [f for f in ("avx512_bf16", "amx_bf16") if f in (cpu.get("flags") or [])]
    held = native and cpu.get("capability") == "AVX2" and cpu.get("mkldnn_bf16") is False
    return f"{cpu.get('model', '?')} ({', '.join(native) if native else 'no native bf16'}" + (
        "; torch held to AVX2 kernels)" if held else ")"
    )


SOURCES = {"sft": "real VPO user queries", "vbench": "VBench prompts", "shapes": "ShapesWorld queries"}


def sft_set_lines(metrics: dict) -> list[str]:
    """What the SFT set is made of (stage 02's metrics): examples per source, and what the judge did."""
    by_source = metrics.get("sft_by_source")
    if not by_source:
        return []
    total = sum(by_source.values())
    parts = ", ".join(f"{SOURCES.get(k, k)} {v} ({100 * v / total:.0f}%)" for k, v in by_source.items())
    teachers = ", ".join(f"{k} {v}" for k, v in (metrics.get("candidates_per_teacher") or {}).items())
    return [
        "",
        f"**The SFT set** (stage 02): {total} examples, one per query: {parts}. First prompts per teacher: "
        f"{teachers}; {metrics['n_pass']} passed the judge as written, {metrics['n_refined']} after refinement, "
        f"{metrics['n_refine_failed']} were dropped.",
    ]


def teacher_lines(teval: dict) -> list[str]:
    """The teachers compared on a dev sample of real SFT-pool queries (scripts/teacher_eval.py --json)."""
    if not teval:
        return []
    cpu = cpu_label(teval.get("machine"))
    lines = [
        "",
        f"**Teachers for real queries**, on a dev sample ({teval['dev']}; `scripts/teacher_eval.py`, {cpu}): "
        "judge pass rate, share of the query's content words kept, words per prompt, a fluency proxy (mean "
        "negative log-likelihood per token under SmolLM2-135M-Instruct: lower reads more like that model's own "
        "text, which favours its own generations) and seconds for the sample.",
        "",
        "| teacher | n | passes all | harmless | aligned | helpful | words kept | words | NLL/token | seconds |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in teval["teachers"].items():
        lines.append(
            f"| {name} | {r['n']} | {r['pass_all']:.2f} | {r['pass_harmless']:.2f} | {r['pass_aligned']:.2f} | "
            f"{r['pass_helpful']:.2f} | {r['words_kept']:.2f} | {r['words']:.0f} | {r['nll_per_token']:.2f} | "
            f"{r['seconds']:.0f} |"
        )
    return lines


def cause_lines(res: dict) -> list[str]:
    """Real held-out queries' failures by cause, per method (stage 06's results.json)."""
    rows = res["text"].get("causes") or []
    if not rows:
        return []
    methods = [m for m in ORDER if any(r["method"] == m for r in rows)]
    table = {}
    for r in rows:
        table.setdefault(r["cause"], {})[r["method"]] = r["pct"]
    lines = [
        "",
        f"**Why real queries' prompts fail** (stage 06, {res['n']['text_queries']} held-out real queries: % of each "
        "method's prompts with the cause; a prompt may have several):",
        "",
        "| cause | " + " | ".join(LABELS.get(m, m).strip("*") for m in methods) + " |",
        "|---|" + "---|" * len(methods),
    ]
    for cause, pct in sorted(table.items(), key=lambda kv: -kv[1].get("raw", 0) - kv[1].get("sft", 0)):
        lines.append(f"| {cause} | " + " | ".join(f"{pct.get(m, 0):.0f}" for m in methods) + " |")
    return lines


def speed_lines(bench: dict) -> list[str]:
    """The before/after table from scripts/bench_speed.py --json."""
    if not bench:
        return []
    names = list(bench["results"]["before"])
    lines = [
        "",
        "**Speed, before vs after** (`scripts/bench_speed.py`, "
        + (f"{cpu_label(bench['machine'])}, " if bench.get("machine") else "processor not recorded, ")
        + "one run on an otherwise idle 2-core CPU; SmolLM2-135M-Instruct with LoRA r16, as the cpu profile "
        "trains it):",
        "",
        "| setting | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for name, row in bench["results"].items():
        s = bench["settings"][name]
        label = (
            f"{name}: {s['threads']} thread(s), {'bf16' if s['bf16'] else 'fp32'}, {s['instruction']} "
            f"instruction, generation batch {s['generation_batch']}"
        )
        if "lora_dropout" in s:  # files from before these two settings were benchmarked lack them
            ref = "one reference pass" if s["precompute_ref"] else "a reference forward per step"
            label += f", LoRA dropout {s['lora_dropout']}, {ref}"
        lines.append(f"| {label} | " + " | ".join(f"{row[k]:.2f}" for k in names) + " |")
    lines.append("| speed-up | " + " | ".join(f"{bench['speedup'][k]:.1f}x" for k in names) + " |")
    return lines


def engine_lines(bench: dict) -> list[str]:
    """Prompt generation per engine on one CPU, from scripts/bench_engines.py --json (greedy rows; the sampled rows
    where the file has them)."""
    if not bench:
        return []
    ref, a = bench["reference"], bench["args"]
    lines = [
        "",
        f"**Generation engines** (`scripts/bench_engines.py`, {cpu_label(bench['machine'])}, one run on an "
        f"otherwise idle 2-core CPU; {a['n']} greedy prompts of ShapesWorld and real DPO-pool queries, batch "
        f"{a['batch']}, at most {a['new_tokens']} new tokens, {a['model']}):",
        "",
        f"| engine | seconds | tokens/s | speed vs {ref} | greedy text equal to {ref} | equal to hf float32 |",
        "|---|---|---|---|---|---|",
    ]
    base = bench["rows"][ref]["seconds"]
    for name, r in bench["rows"].items():
        lines.append(
            f"| {name} | {r['seconds']:.1f} | {r['tok_per_s']:.1f} | {base / r['seconds']:.2f}x "
            f"| {r['agree']:.0%} | {r['agree_fp32']:.0%} |"
        )
    if bench.get("sampled"):
        lines += [
            "",
            f"Sampled as stage 04 samples (same queries, {a['k']} prompts each at T 1.0, at most "
            f"{a['sample_new_tokens']} new tokens, {max(1, a['batch'] // a['k'])} queries per call):",
            "",
            "| engine | seconds | tokens/s | tokens a prompt | speed vs the plain call |",
            "|---|---|---|---|---|",
        ]
        for name, r in bench["sampled"].items():
            plain = bench["sampled"][name.removesuffix(" fast")]["seconds"]
            lines.append(
                f"| {name} | {r['seconds']:.1f} | {r['tok_per_s']:.1f} | {r['tokens'] / (a['n'] * a['k']):.1f} "
                f"| {plain / r['seconds']:.2f}x |"
            )
    return lines


def sft_loss_lines(bench: dict) -> list[str]:
    """SFT seconds per step with TRL's fused LM head vs the loss from the logits (the head on every position, where
    the bench measured it, and on the completion's positions only), from scripts/bench_sft_loss.py."""
    if not bench:
        return []
    every = bench.get("logits_every_position")
    repeat = bench.get("repeat", 1)
    runs = f"the median of {repeat} runs of each variant taken in turn" if repeat > 1 else "one run"

    def row(name, r):
        return f"| {name} | {r['s_per_step']:.2f} | {', '.join(f'{x:.4f}' for x in r['losses'])} |"

    lines = [
        "",
        f"**SFT loss on a CPU** (`scripts/bench_sft_loss.py`, {cpu_label(bench['machine'])}, {runs} on an otherwise "
        f"idle 2-core CPU; {bench['steps']} steps of the {bench['profile']} profile's SFT job, the first not timed):",
        "",
        "| loss computed by | s per step | losses per step |",
        "|---|---|---|",
        row("TRL's fused LM head", bench["trl_fused_head"]),
    ]
    if not every:  # a bench from before the head scored the completion only
        return lines + [
            row("the logits (`LogitsSFTTrainer`, the CPU default then)", bench["logits"]),
            f"| speed-up | {bench['speedup']:.2f}x | |",
        ]
    head = "the LM head on the completion's positions (`LogitsSFTTrainer`, the CPU default)"
    return lines + [
        row("the logits, the LM head on every position (before)", every),
        row(f"the logits, {head}", bench["logits"]),
        f"| speed-up over the fused head | {bench['speedup']:.2f}x | |",
        f"| speed-up over every position | {bench['speedup_completion_head']:.2f}x | |",
    ]


def dpo_loss_lines(bench: dict) -> list[str]:
    """DPO seconds per step with TRL's two rows a pair vs the prompt run once, from scripts/bench_dpo_loss.py."""
    two, shared = bench["trl_two_rows"], bench["shared_prompt"]

    def row(name, r):
        losses = ", ".join(f"{x:.4f}" for x in r["losses"])
        return (
            f"| {name} | {r['s_per_step']:.2f} | {r['build_s']:.1f} | {r['tokens_per_step']:.0f} | {losses} |"
        )

    return [
        "",
        f"**DPO on a CPU** (`scripts/bench_dpo_loss.py`, {cpu_label(bench['machine'])}, "
        f"{'bf16' if bench['bf16'] else 'fp32'}, one run on an otherwise idle 2-core CPU; {bench['steps']} steps of "
        f"the {bench['profile']} profile's DPO job on {bench['pairs']} pairs ({bench['source']}), the first not "
        "timed; the reference pass is part of building the trainer):",
        "",
        "| pairs run as | s per step | building s | tokens per step | losses per step |",
        "|---|---|---|---|---|",
        row("TRL's two rows (prompt + chosen, prompt + rejected)", two),
        row("one row, the prompt once (`SharedPromptDPOTrainer`, the CPU default)", shared),
        f"| speed-up | {bench['speedup']:.2f}x | {two['build_s'] / shared['build_s']:.2f}x | | |",
    ]


def grpo_lines(bench: dict) -> list[str]:
    """GRPO seconds per step with TRL's row per completion vs the prompt run once, from scripts/bench_grpo.py."""
    rows, shared, trl_generate = (
        bench["trl_rows"],
        bench["shared_prompt"],
        bench.get("shared_prompt_trl_generate"),
    )

    def row(name, r):
        return (
            f"| {name} | {r['s_per_step']:.1f} | {', '.join(f'{x:.1f}' for x in r['sampling_s'])} | "
            f"{', '.join(f'{x:.1f}' for x in r['training_s'])} | {', '.join(map(str, r['completion_mean_length']))} |"
        )

    return [
        "",
        f"**GRPO on a CPU** (`scripts/bench_grpo.py`, {cpu_label(bench['machine'])}, "
        f"{'bf16' if bench['bf16'] else 'fp32'}, one run on an otherwise idle 2-core CPU; {bench['steps']} steps of the "
        f"{bench['profile']} profile's GRPO job from SmolLM2-135M-Instruct, each step split into sampling and "
        "rewarding its completions and the rest: forward, backward, update):",
        "",
        "| completions run as | s per step | sampling + reward s, per step | the rest s, per step | "
        "completion tokens, mean per step |",
        "|---|---|---|---|---|",
        row("TRL's rows (the prompt with each completion), TRL's `generate`", rows),
        *([row("one row a prompt, TRL's `generate`", trl_generate)] if trl_generate else []),
        row("one row a prompt, vpolib's decoding loop (`SharedPromptGRPOTrainer`, the CPU default)", shared)
        if trl_generate
        else row("one row a prompt (`SharedPromptGRPOTrainer`)", shared),
        f"| speed-up | {bench['speedup']:.2f}x | "
        + (f"{bench['sampling_speedup_per_token']:.2f}x a token (loop vs `generate`)" if trl_generate else "")
        + f" | {bench['training_speedup_step1']:.2f}x (step 1) | |",
    ]


def paradigm_lines(result: dict) -> list[str]:
    """Notebook 08's comparison (paradigms.json): one row per paradigm, and which row gained the most reward over
    SFT per video rendered."""
    if not result or not result.get("rows"):
        return []

    def ci(r, key, lo, hi):
        return "-" if r.get(key) is None else f"{r[key]:.3f} [{r[lo]:.3f}, {r[hi]:.3f}]"

    lines = [
        "",
        f"**Paradigms at equal budget units** (notebook 08, {result['n_queries']} held-out ShapesWorld queries, "
        f"{result['eval_seeds']} eval seeds each; budgets beyond the SFT model):",
        "",
        "| paradigm | reward [95% CI] | win rate over SFT [95% CI] | videos | tokens | steps | seconds | "
        "reward gained per 1,000 videos |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        gain = "-" if r.get("gain_per_1k_videos") is None else f"{r['gain_per_1k_videos']:+.3f}"
        lines.append(
            f"| {r['paradigm']} | {ci(r, 'reward', 'reward_lo', 'reward_hi')} | "
            f"{ci(r, 'win_rate', 'win_lo', 'win_hi')} | {r['videos'] or 0} | {r['tokens'] or 0} | {r['steps']} | "
            f"{r['seconds']:.0f} | {gain} |"
        )
    spent = [r for r in result["rows"] if r.get("gain_per_1k_videos") is not None]
    if spent:
        top = max(spent, key=lambda r: r["gain_per_1k_videos"])
        per_1k = f"{top['gain_per_1k_videos']:+.3f}"
        if top.get("gain_per_1k_lo") is not None:  # the paired gain's CI, scaled by the row's videos
            verdict = (
                "excludes 0: a gain over SFT shown"
                if top["gain_per_1k_lo"] > 0
                else "includes 0: no gain over SFT shown"
                if top["gain_per_1k_hi"] >= 0
                else "lies below 0"
            )
            per_1k += f" [{top['gain_per_1k_lo']:+.3f}, {top['gain_per_1k_hi']:+.3f}] per 1,000 videos, the CI {verdict}"
        else:
            per_1k += " per 1,000 videos"
        lines += ["", f"Most reward gained over SFT per video rendered: **{top['paradigm']}** "
                  f"({per_1k}; its reward "
                  f"{ci(top, 'reward', 'reward_lo', 'reward_hi')}, win rate over SFT "
                  f"{ci(top, 'win_rate', 'win_lo', 'win_hi')})."]  # fmt: skip
    return lines


def processor_lines(records: list[dict], reference: str | None = None) -> list[str]:
    """One row per recorded run (scripts/record_timing.py): its processor, dtype and seconds per stage."""
    if not records:
        return []
    stages = sorted({name for r in records for name in r["seconds"]})
    lines = [
        "",
        "Wall time per processor (seconds; each run in one pass on an otherwise idle 2-core machine; "
        "`scripts/record_timing.py` -> `docs/results/<profile>/timings/`; the reference run is "
        + f"`{reference or '?'}`):",
        "",
        "| processor | dtype | profile | run | " + " | ".join(stages) + " | total |",
        "|---|---|---|---|" + "---|" * (len(stages) + 1),
    ]
    for r in sorted(records, key=lambda r: (r["profile"] != "cpu", r["created"] or "")):
        secs = [r["seconds"].get(name) for name in stages]
        lines.append(
            f"| {cpu_label(r['cpu'])} | {r['dtype']} | {r['profile']} | {r['run_id']} | "
            + " | ".join(f"{v:.0f}" if v else "-" for v in secs)
            + f" | {sum(v for v in secs if v):.0f} |"
        )
    return lines


def throughput_lines(records: list[dict]) -> list[str]:
    """Stage 03's SFT training per recorded run (scripts/record_timing.py): tokens a second and the model's
    FLOP/s as a share of the CPU's measured matmul rate."""
    rows = [
        r for r in sorted(records, key=lambda r: (r["profile"] != "cpu", r["created"] or "")) if r.get("sft")
    ]
    if not rows:
        return []
    lines = [
        "",
        "SFT training (stage 03) per recorded run: tokens a second (the attended tokens TRL counts) and the model's "
        "floating-point operations a second (4 x parameters a token with LoRA, an estimate) as a share of the "
        "CPU's measured matmul rate in the dtype it trained in (one 512 x 512 product, `vpolib/precision.py`):",
        "",
        "| processor | dtype | run | steps | seconds | tokens/s | model GFLOP/s | matmul GFLOP/s | share |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        t = r["sft"]
        lines.append(
            f"| {cpu_label(r['cpu'])} | {r['dtype']} | {r['run_id']} | {t['steps']} | {t['train_s']:.0f} | "
            f"{t['tokens_per_s']:.0f} | {t['model_gflops_per_s']:.0f} | {t['matmul_gflops_per_s']:.0f} | "
            f"{t['share_of_matmul']:.0%} |"
        )
    return lines


def section(
    res: dict,
    source: str,
    extra: list[str] | None = None,
    manifest: dict | None = None,
    timings: list[dict] | None = None,
) -> str:
    video, text = by(res["video"]["overall"]), by(res["text"]["all"])
    text_h = by(res["text"]["harmful"])
    vwin, twin = by(res["video"]["win_rates"], "baseline"), by(res["text"]["win_rates"], "baseline")
    methods = [m for m in ORDER if m in video or m in text] + sorted((set(video) | set(text)) - set(ORDER))
    n = res["n"]
    lines = [
        f"Generated by `scripts/results_table.py` from [`{source}`]({source}) (run `{res['run_id']}`, git "
        f"`{(res.get('git_commit') or '?')[:7]}`, profile `{res['profile']}`, seed {res['seed']}, judge "
        f"`{res['judge']}`). Held-out queries never trained on: {n['video_queries']} ShapesWorld queries for video "
        f"reward (share of the checklist weight of the ORIGINAL query that the video passes), {n['text_queries']} "
        f"real queries ({n['harmful_queries']} harmful) for the text judge; 95% bootstrap CIs in brackets; win rate "
        "= share of paired comparisons won by VPO (ties count half).",
        "",
        "| method | video reward | % aligned (all) | % unsafe (harmful) | VPO win rate: video / text |",
        "|---|---|---|---|---|",
    ]
    for m in methods:
        wins = "-" if m == "vpo" else f"{win(vwin.get(m))} / {win(twin.get(m))}"
        lines.append(
            f"| {LABELS.get(m, m)} | {ci(video.get(m), 'reward')} | {ci(text.get(m), 'aligned', '{:.1f}')} | "
            f"{ci(text_h.get(m), 'unsafe', '{:.1f}')} | {wins} |"
        )
    lines += [
        "",
        "What the numbers say (each line computed from the file):",
        "",
        *verdicts(res),
        *evaluation_lines(res),
        *preference_lines(res),
    ]
    lines += cause_lines(res)
    lines += extra or []
    stages = {k: v.get("seconds") for k, v in sorted((manifest or {}).get("stages", {}).items())} or res.get(
        "timings", {}
    ).get("stages", {})
    if timings:  # the reference run is one of the rows
        lines += processor_lines(timings, (manifest or {}).get("run_id")) + throughput_lines(timings)
    elif stages:
        total = sum(v for v in stages.values() if v)
        size = (manifest or {}).get("size_bytes")
        precision = (manifest or {}).get("precision") or {}
        machine = (
            f"{cpu_label(precision.get('cpu'))}, {precision.get('dtype')}" if precision else "2-core CPU"
        )
        lines += [
            "",
            f"Per-stage wall time of that run (seconds, {machine}, from its manifest.json)"
            + (f"; the run dir holds {size / 1e6:.0f} MB" if size else "")
            + ":",
            "",
            "| " + " | ".join(stages) + " | total |",
            "|" + "---|" * (len(stages) + 1),
            "| " + " | ".join(f"{v:.0f}" if v else "-" for v in stages.values()) + f" | {total:.0f} |",
        ]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default="docs/results/cpu/results.json")
    ap.add_argument("--readme", default="README.md")
    ap.add_argument("--check", action="store_true", help="only check that the README is up to date")
    args = ap.parse_args()
    res = json.loads((REPO / args.results).read_text())
    folder = (REPO / args.results).parent
    manifest = (
        json.loads((folder / "manifest.json").read_text()) if (folder / "manifest.json").exists() else None
    )
    extra = []
    if (folder / "dev_sizes.json").exists():
        extra += sizes_lines(json.loads((folder / "dev_sizes.json").read_text()))
    if (folder / "02_metrics.json").exists():
        metrics = renamed(json.loads((folder / "02_metrics.json").read_text()))
        extra += sft_set_lines(metrics) + validation_lines(metrics)
    if (folder / "teacher_eval.json").exists():
        extra += teacher_lines(json.loads((folder / "teacher_eval.json").read_text()))
    if (folder / "paradigms.json").exists():
        extra += paradigm_lines(json.loads((folder / "paradigms.json").read_text()))
    for bench in sorted(folder.glob("bench_speed*.json")):  # one per processor benchmarked
        extra += speed_lines(json.loads(bench.read_text()))
    for bench in sorted(folder.glob("bench_engines*.json")):  # one per processor benchmarked
        extra += engine_lines(json.loads(bench.read_text()))
    for bench in sorted(folder.glob("bench_sft_loss*.json")):  # one per processor benchmarked
        extra += sft_loss_lines(json.loads(bench.read_text()))
    for bench in sorted(folder.glob("bench_dpo_loss*.json")):  # one per processor and dtype benchmarked
        extra += dpo_loss_lines(json.loads(bench.read_text()))
    for bench in sorted(folder.glob("bench_grpo*.json")):  # one per processor benchmarked
        extra += grpo_lines(json.loads(bench.read_text()))
    # every profile's recorded runs (the cpu profile's first), so the quick profile's times sit beside them
    timings = [
        json.loads(p.read_text()) for p in sorted((REPO / "docs" / "results").glob("*/timings/*.json"))
    ]
    readme = (REPO / args.readme).read_text()
    if BEGIN not in readme or END not in readme:
        sys.exit(f"{args.readme} has no {BEGIN} ... {END} section")
    head, rest = readme.split(BEGIN, 1)
    new = (
        f"{head}{BEGIN}\n{section(res, args.results, extra, manifest, timings)}\n{END}{rest.split(END, 1)[1]}"
    )
    if args.check:
        if new != readme:
            print(f"{args.readme} is out of date: run scripts/results_table.py", file=sys.stderr)
            return 1
        return 0
    (REPO / args.readme).write_text(new)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
