"""Profiles (configs/<name>.yaml) -> typed dataclasses, with dotted-key overrides.

A profile may start with ``extends: <other profile>``; its keys are merged over the other's.
Each stage owns one section (``data``, ``refine``, ``sft``, ``feedback``, ``dpo``, ``analysis``; notebook 08's
``grpo``) and reads no other stage's; what several stages share has its own section (``judge``, ``video``,
``shapesworld``). The ``trainer`` sections are checked against TRL's ``SFTConfig`` / ``DPOConfig`` /
``GRPOConfig`` fields and ``lora`` against PEFT's ``LoraConfig`` fields when the profile loads, so a typo fails
before any stage runs.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from pathlib import Path

from vpolib.paths import CONFIG_DIR
from vpolib.profiles import ConfigError, apply_overrides, build_dataclass, check_keys, read_profile


@dataclass
class DataConfig:
    """Stage 01: loading, cleaning, tagging and splitting the real queries."""

    root: str = "data"  # relative to the repo root (see data/SOURCES.md); $VPO_DATA_DIR wins
    vpo_sft: str = "vpo/sft_prompts.json"
    vpo_dpo: str = "vpo/dpo_prompts.json"
    vbench_dir: str = "vbench"
    limit: int | None = None  # cap on queries read per source (smoke size)
    max_query_chars: int = 600  # longer queries are flagged 'too_long' (kept)
    min_query_chars: int = 3  # shorter ones (after removing tags) are dropped
    drop_non_english: bool = False  # non-English queries are flagged; dropped only if True
    drop_too_long: bool = False
    heldout_size: int = 500  # real queries held out for evaluation (never trained on)
    heldout_from: str = "dpo"  # which pool the held-out set is carved from
    heldout_harmful: int = (
        0  # harmful-flagged queries in the held-out set, spread evenly (stratified evaluation)
    )
    # ShapesWorld queries (vpolib.shapesworld) added to each split: the CPU profile's video world.
    shapes_sft: int = 300
    shapes_dpo: int = 200
    shapes_heldout: int = 100


@dataclass
class ShapesWorldConfig:
    """Shared: ShapesWorld, the laptop-scale text-to-video world: its trained video model (04, 06) and its
    teacher, which fails like a real one (02, and the few-shot baseline of 06)."""

    model_dir: str = (
        "vpolib/assets/shapesworld"  # trained pipeline (scripts/train_shapesworld.py), repo-relative
    )
    num_inference_steps: int = 20  # DDIM steps per video (the evidence in docs/shapesworld.md used 20)
    guidance_scale: float = 3.0  # classifier-free guidance
    # The teacher's failure rates (vpolib.shapesworld.teacher.TeacherRates fields)
    teacher_rates: dict = field(default_factory=dict)


@dataclass
class VideoConfig:
    """Shared: the text-to-video model and its checklist reward (04 renders and scores pairs, 06 evaluates)."""

    backend: str = "shapesworld"  # shapesworld (the `shapesworld` section) | cogvideox (see vpolib/video.py)
    # cogvideox backend only:
    cogvideox_model: str = "THUDM/CogVideoX-2b"  # hub id or local dir; "tiny" = toy-size model (tests)
    cogvideox_call: dict = field(default_factory=dict)  # passed to CogVideoXPipeline.__call__
    vae_tiling: bool = False  # CogVideoX VAE slicing + tiling: decode 49 frames at 720x480 in less GPU memory
    dtype: str = "float32"  # weights of the video model and of the VisionReward answerer; "auto" as sft.dtype
    reward: str = "frame-stats"  # frame-stats (pixel checks, tests) | visionreward (VisionReward-Video VLM)
    reward_model: str = "THUDM/VisionReward-Video"


@dataclass
class JudgeConfig:
    """Shared: the run's one judge of the three principles, and the model the LLM refiner asks (02-06)."""

    kind: str = "rule"  # "rule" (offline, per-principle) | "llm" (critique template via `backend`)
    backend: str = "openai"  # backend of the LLM judge and refiner: "openai" (env config) | "local:<model>"
    batch_size: int = 8  # local backend batch (conversations per generate call)
    concurrency: int = 8  # parallel requests for the OpenAI-compatible backend
    structured: bool = (
        False  # LLM judge/refiner reply in JSON (response_format + JSON schema: vLLM, llama.cpp)
    )
    check_first: int = 8  # stop early if most of the first that many LLM judge/refiner replies don't parse
    use_models: bool = True  # rule judge uses the spaCy safety classifier and MiniLM embeddings
    harm_threshold: float = 0.5  # P(adult or cp) from the safety classifier that fails Harmless
    min_coverage: float = 0.6  # share of query content words the prompt must keep
    min_similarity: float = 0.35  # MiniLM cosine(query, prompt) below this fails Aligned
    min_words: int = 12
    min_words_world: int = 4  # ShapesWorld prompts: its captions run 10-27 words, its text encoder reads 32
    max_words: int = 250  # longer prompts fail Helpful (and the rule refiner trims to it)


@dataclass
class RefineConfig:
    """Stage 02: teacher prompts, critique by the run's judge (the ``judge`` section), refinement."""

    # First-prompt sources: vbench (shipped GPT-4o/Wan2.1 expansions), shapes (the ShapesWorld teacher, which
    # fails like a real one: vpolib/shapesworld/teacher.py), caption (ShapesWorld's own caption: an oracle),
    # compose (real queries, templated: vpolib/compose.py), llm (real queries, teacher_backend, few-shot).
    teachers: list = field(default_factory=lambda: ["vbench", "shapes", "llm"])
    teacher_backend: str = "local:smollm2-135m-instruct"  # "local:<model spec>" | "openai" (env config)
    n_queries: int | None = 8  # real VPO queries (sft_pool) given to the compose and LLM teachers (None: all)
    harmful_share: float = 0.0  # at least this share of them harmful-flagged (vpolib.teachers.real_queries)
    samples_per_query: int = 1  # teacher prompts per real query
    n_shots: int = 1  # VBench GPT-4o pairs used as few-shot examples (the shortest: each adds ~300 tokens)
    vbench_sets: list = field(default_factory=lambda: ["dimension", "category"])
    vbench_limit: int | None = 100  # VBench queries per set (None: all)
    max_new_tokens: int = 120
    temperature: float = 0.7
    top_p: float = 0.9
    batch_size: int = 8  # local teacher backend batch (conversations per generate call)
    teacher_dtype: str = "float32"  # a local teacher's weights; "auto" as sft.dtype (bf16: 2.2x the tokens/s)
    concurrency: int = 8  # parallel teacher requests for the OpenAI-compatible backend
    check_first: int = 8  # stop early if most of the first that many LLM teacher replies are empty
    refiner: str = "rule"  # "rule" | "llm" (refine template through `judge.backend`)
    compare_judges: int = 0  # >0: also run the LLM judge on this many candidates and report agreement
    validation_per_kind: int = 60  # judge validation items per kind (VBench + ShapesWorld, notebook 02)


@dataclass
class SFTStageConfig:
    """Stage 03: supervised fine-tuning of the optimizer."""

    base_model: str = "tiny-llama"  # a vpolib.models spec: tiny-llama | smollm2-135m-instruct | hub id | dir
    use_lora: bool = True  # LoRA adapters (merged into the saved model) instead of a full fine-tune
    lora: dict = field(default_factory=dict)  # passed to peft.LoraConfig (r, lora_alpha, target_modules...)
    max_examples: int | None = None  # cap on SFT examples (CPU budget); None: all of 02's set
    eval_fraction: float = 0.1  # share of the SFT set held out for the eval loss
    max_eval: int | None = 16  # cap on those eval examples (each eval pass costs forward passes)
    n_heldout: int | None = 50  # held-out queries (from 01) to write optimized prompts for; None: all
    max_new_tokens: int = 128  # generation length for those prompts
    # trl.SFTConfig fields (checked at load; use_cpu follows `device`; bf16 "auto": True iff auto is bf16)
    trainer: dict = field(default_factory=dict)
    # inprocess: train in the notebook's kernel; accelerate: `accelerate launch -m vpolib.train job` (log streamed)
    launcher: str = "inprocess"
    accelerate_config: str = "configs/accelerate/cpu.yaml"  # repo-relative; the full profile uses zero3.yaml
    num_processes: int | None = None  # overrides the accelerate config's (None: the config's)
    # weights' dtype when the trained model generates (bfloat16 on GPU); "auto": bf16 where the CPU
    # computes it natively and faster, else fp32 (vpolib/precision.py)
    dtype: str = "float32"


@dataclass
class FeedbackConfig:
    """Stage 04: the SFT model's samples, rendered and scored (the ``video`` section) and judged (``judge``):
    video- and text-level preference pairs."""

    queries: str = "shapes"  # which DPO-pool queries get videos: shapes (ShapesWorld ones) | all
    n_queries: int = 48  # at most this many queries (first ones of the pool)
    samples_per_query: int = 4  # k prompts sampled per query (reference: 4)
    temperature: float = 0.9
    top_p: float = 0.9
    max_new_tokens: int = 64
    # local: HF generate on 03's model in the kernel; openai: an OpenAI-compatible server already serving
    # 03's model (`vllm serve RUN/03_sft/model --served-model-name vpo-sft`), n choices per request
    sampler: str = "local"
    sampler_url: str = "http://127.0.0.1:8000/v1"  # its own URL: OPENAI_* stay the judge's endpoint
    sampler_model: str = "vpo-sft"
    # Score gap a pair needs, as a FRACTION of the checklist's max_score. The reference's 0.5 on
    # VisionReward's 64 weights (sum 6.277) is 0.5 / 6.277 = 0.0797 of its max.
    margin: float = 0.0797
    max_pairs_per_query: int = 1  # paper pairing: cap on merged pairs per query (reference: 1)
    text_pairs_first: bool = True  # paper pairing: text-level pairs take precedence in the merge (reference)
    # paper: the reference's recipe (refined text pairs first, strict dominance + margin, one pair per query);
    # onpolicy: both sides of every pair are the model's own samples, a query may give one pair of each track
    # (vpolib/preference.py). Either way 04 also writes the paper's set (paper_pairs.jsonl: the vpo-paper row).
    pairing: str = "paper"
    reward_seeds: int = 1  # noise seeds each sample is rendered with; its video reward is their mean
    video_rule: str = (
        "gap"  # onpolicy: gap (best vs worst sample past the margin) | dominance (+ the paper's rule)
    )
    # On-policy text-level feedback (the paper): the SFT model's samples are judged, failures refined.
    text_feedback: bool = True
    n_text_queries: int = 48  # real DPO-pool queries sampled for text feedback only (harmful ones first)
    # None: harmful-flagged ones fill up to half of n_text_queries; an int tops them up to this many (the
    # n_text_queries picked stay; the real dev split takes its harmful queries from the pool's end)
    harmful_text_queries: int | None = None
    harmful_samples_per_query: int | None = None  # k for harmful-flagged queries (None: samples_per_query)
    gallery_size: int = 3  # queries shown in the notebook's gallery
    save_mp4: bool = False  # GIFs are always written; mp4 too when True
    render_batch: int = 32  # videos rendered per call
    mp4_only: bool = (
        False  # with save_mp4: the sharded renderer (python -m vpolib.video render) writes no GIF
    )
    # Render and score as sharded jobs (the full profile): `accelerate launch -m vpolib.video render`, then the
    # VisionReward job in its own environment; both write 04's files, which the notebook then reads.
    render_jobs: bool = False
    render_processes: int | None = None  # the render job's --num_processes (None: accelerate's default)
    visionreward_launcher: str = "accelerate launch"  # e.g. ".venv-visionreward/bin/accelerate launch"


@dataclass
class DPOStageConfig:
    """Stage 05: DPO of the optimizer."""

    pairs: str = "both"  # both | text | video | paper: pairs the VPO model trains on (the paper's ablation)
    # Preference rounds of the VPO model: round 1 trains on 04's pairs; each later round samples from the latest
    # model, builds new pairs as 04 does and trains from that model, which is also the round's DPO reference.
    rounds: int = 1
    n_dev: int | None = 100  # dev-split queries scored after each round (vpolib/preference.py dev_queries)
    n_dev_text: int | None = 0  # real dev queries judged per round (preference.dev_text_queries)
    ablations: list = field(default_factory=list)  # other pair sets to train too, saved as model_<pairs>/
    use_lora: bool = True  # LoRA on the SFT model; the reference model is then the SFT model itself
    lora: dict = field(default_factory=dict)  # passed to peft.LoraConfig
    max_pairs: int | None = None  # cap on preference pairs (CPU budget); None: all
    # times each text pair whose rejected prompt was judged unsafe enters training (1: once, as every pair):
    # the few pairs that teach the optimizer to drop harmful wording, weighted up (examples.repeat_unsafe)
    unsafe_repeat: int = 1
    eval_fraction: float = 0.1  # share of the pairs held out for eval rewards
    max_eval: int | None = 8  # cap on those eval pairs
    n_heldout: int | None = 50  # held-out queries to write VPO prompts for; None: all
    max_new_tokens: int = 128
    trainer: dict = field(default_factory=dict)  # trl.DPOConfig fields (beta lives here; bf16 "auto" as sft)
    launcher: str = "inprocess"  # inprocess | accelerate (as sft.launcher)
    accelerate_config: str = "configs/accelerate/cpu.yaml"
    num_processes: int | None = None
    dtype: str = "float32"  # weights' dtype when the trained model generates; "auto" as sft.dtype


@dataclass
class GRPOStageConfig:
    """Notebook 08's online RL paradigm: GRPO of the SFT optimizer with TRL's GRPOTrainer, each sampled prompt
    rewarded by its video (vpolib/rl.py)."""

    # ShapesWorld queries of the DPO pool it trains on: stage 04's rendered ones first (the data VPO learns from;
    # never the dev split or the held-out set). None: all of 04's.
    n_queries: int | None = 64
    reward_seeds: int = 2  # noise seeds per sampled prompt (training keys only: never an evaluation seed)
    render_batch: int = 32  # prompts rendered per call of the video model
    use_lora: bool = True
    lora: dict = field(default_factory=dict)  # passed to peft.LoraConfig
    n_heldout: int | None = 100  # held-out ShapesWorld queries it writes greedy prompts for
    max_new_tokens: int = 64
    trainer: dict = field(default_factory=dict)  # trl.GRPOConfig fields (num_generations, beta, ...)
    dtype: str = "float32"  # weights' dtype when the trained model generates; "auto" as sft.dtype
    # no launcher: the reward renders in the training process, so GRPO always trains in process


@dataclass
class ParadigmsConfig:
    """Notebook 08: the paradigms compared on notebook 06's held-out ShapesWorld queries (GRPO has its own
    ``grpo`` section)."""

    best_of: list = field(
        default_factory=lambda: [4, 8]
    )  # SFT's best of n sampled prompts, picked on selection noise
    testtime_rounds: int = 4  # rounds of the generate -> score -> rewrite loop from SFT's prompt (0: no row)
    grpo: bool = True  # train the GRPO row (the section `grpo` says how)


@dataclass
class AnalysisConfig:
    """Stage 06: evaluation, figures, failure-case browser and report."""

    n_bootstrap: int = 1000  # bootstrap resamples for every 95% CI
    n_eval: int | None = 200  # held-out real queries judged per method (text metrics); null = all
    n_video: int = 24  # held-out ShapesWorld queries rendered and scored per method (video metrics)
    video_batch: int = 8  # prompts rendered per call; each chunk's seed is shared by all methods
    # Noise seeds each (method, held-out ShapesWorld query) is rendered with (vpolib.evaluate.eval_seed; seed 0 is
    # the query's one noise of earlier runs); a method's reward on a query is its mean over them, so one lucky
    # or unlucky noise no longer decides a paired comparison. Every method gets the same seeds (paired).
    eval_seeds: int = 1
    # Sampled decoding beside greedy: prompts sampled per held-out ShapesWorld query from each trained optimizer of
    # `sampled_methods` (03_sft/model, 05_dpo/model) at `sampled_temperature` (top-p 1), each rendered with the
    # eval seeds; reported as the mean reward over samples and seeds, and the paired win rate (0: off).
    sampled: int = 0
    sampled_temperature: float = 0.7
    sampled_methods: list = field(default_factory=lambda: ["sft", "vpo"])
    # The evaluation's judge: "rule" (offline, the `judge` section's thresholds) | "llm" (`judge.backend`) | a
    # backend spec ("openai", "local:<model>"); it may differ from the judge that built the training data.
    judge: str = "rule"
    baselines: list = field(default_factory=lambda: ["raw", "rule", "fewshot"])  # rewriters run here
    fewshot_backend: str | None = "local:smollm2-135m-instruct"  # None: the few-shot baseline is skipped
    fewshot_shots: int = 3  # VBench (query, GPT-4o) examples in each few-shot request (~300 tokens each)
    fewshot_max_new_tokens: int = 200
    fewshot_dtype: str = "float32"  # its weights' dtype; "auto" as sft.dtype
    required: list = field(default_factory=lambda: ["sft", "vpo"])  # missing -> a clear error
    target: str = "vpo"  # the method compared against every other (paired win rates)
    caption_oracle: bool = True  # also render ShapesWorld's own detailed caption (an upper bound)
    gallery_size: int = 6  # queries shown with every method's video in the report
    # Benchmarks (full profile, vpolib/benchmarks.py): each method rewrites the benchmark prompt, videos are
    # scored against the original one (VBench through its own toolkit, MonetBench through VisionReward).
    benchmarks: list = field(default_factory=list)  # vbench | monetbench
    benchmark_methods: list = field(default_factory=lambda: ["raw", "sft", "vpo"])
    benchmark_samples: int = 5  # videos per prompt (VBench's standard)
    benchmark_limit: int | None = None  # prompts per benchmark (None: all)
    monetbench_file: str | None = (
        None  # MonetBench's prompts, one per line (not shipped: VisionReward's release)
    )
    vbench_command: str = "vbench"  # VBench's CLI, e.g. .venv-vbench/bin/vbench (pip install vbench==0.1.5)


@dataclass
class BeyondConfig:
    """Stage 06, "Beyond the paper": a second video model, a test-time baseline, reward-hacking checks.

    Model B and the test-time loop need the ShapesWorld backend (``video.backend: shapesworld``)."""

    model_b: bool = True  # render and score every method's held-out prompts on ShapesWorld model B as well
    model_b_dir: str = (
        "vpolib/assets/shapesworld_b"  # model B's pipeline (scripts/train_shapesworld.py --model b)
    )
    probe: bool = (
        True  # prompt-insensitivity probe: each held-out query's video from its caption / another's / ""
    )
    diagnostics: bool = True  # reward vs prompt length, per-dimension VPO - SFT, prompt-length drift
    testtime_rounds: int = (
        0  # test-time baseline: up to this many generate -> score -> rewrite rounds (0: off)
    )
    # optimizers that rewrite (03/05 models); "vpo:none" = that optimizer with another feedback style
    testtime_methods: list = field(default_factory=lambda: ["vpo"])
    testtime_feedback: str = (
        "statements"  # statements | questions | none (resampling only: the loop's control)
    )
    testtime_queries: int | None = 24  # held-out ShapesWorld queries in the loop (first ones); None: all
    testtime_temperature: float = 0.7  # sampling temperature of each rewrite
    testtime_max_new_tokens: int = 64  # ShapesWorld's text encoder reads 32 words


@dataclass
class Config:
    profile: str = "cpu"
    seed: int = 42
    # torch intra-op threads, set by start_stage. Measured on an idle 2-core machine, 2 threads beat 1 (a SmolLM2
    # LoRA step 4.0 vs 6.2 s); two processes with 2 threads each slow each other down many times over.
    torch_threads: int | None = None  # None: the cores this process may use (os.sched_getaffinity)
    # The one device switch: where models run and generate, the video model, and the trainers' use_cpu.
    device: str = "cpu"
    # The optimizer's instruction: "paper" (the reference's ~250-token text) or "short" (the same principles in
    # ~45 tokens: on 2 CPU cores the instruction is most of every training and generation sequence).
    instruction: str = "paper"
    generation_batch: int = 32  # conversations per local generate call (bigger batches: more tokens/s on CPU)
    data: DataConfig = field(default_factory=DataConfig)
    shapesworld: ShapesWorldConfig = field(default_factory=ShapesWorldConfig)
    video: VideoConfig = field(default_factory=VideoConfig)
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    refine: RefineConfig = field(default_factory=RefineConfig)
    sft: SFTStageConfig = field(default_factory=SFTStageConfig)
    feedback: FeedbackConfig = field(default_factory=FeedbackConfig)
    dpo: DPOStageConfig = field(default_factory=DPOStageConfig)
    grpo: GRPOStageConfig = field(default_factory=GRPOStageConfig)
    paradigms: ParadigmsConfig = field(default_factory=ParadigmsConfig)
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    beyond: BeyondConfig = field(default_factory=BeyondConfig)
    # What the "auto" dtypes became on this machine, and why (vpolib.precision.resolve_dtypes): set by
    # load_config, never by a profile; start_stage writes it into the run's manifest.
    precision: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@functools.cache
def _library_fields(name: str) -> frozenset[str]:
    """Field names of TRL's ``SFTConfig`` / ``DPOConfig`` or PEFT's ``LoraConfig`` (imported once, on first use)."""
    if name == "LoraConfig":
        from peft import LoraConfig as cls
    else:
        import trl

        cls = getattr(trl, name)
    return frozenset(f.name for f in dataclasses.fields(cls))


# Trainer fields the project sets itself: the device switch, and what train_and_save manages.
MANAGED_TRAINER_KEYS = {
    "use_cpu": "set by the top-level `device`",
    "output_dir": "set by the stage (beside its model)",
}


def _check_library_sections(cfg: Config) -> None:
    """``sft.trainer`` / ``dpo.trainer`` / ``grpo.trainer`` against TRL's config fields, ``lora`` against PEFT's."""
    for stage, trainer_cls in (("sft", "SFTConfig"), ("dpo", "DPOConfig"), ("grpo", "GRPOConfig")):
        section = getattr(cfg, stage)
        names = _library_fields(trainer_cls)
        doc = f"the fields of trl.{trainer_cls}"
        check_keys(section.trainer, names, f"{stage}.trainer", doc)
        for key, why in MANAGED_TRAINER_KEYS.items():
            if key in section.trainer:
                raise ConfigError(f"{stage}.trainer.{key} is {why}: remove it from the profile")
        check_keys(
            section.lora,
            _library_fields("LoraConfig") - {"task_type"},
            f"{stage}.lora",
            "the fields of peft.LoraConfig",
        )


CHOICES = {
    ("feedback", "pairing"): ("paper", "onpolicy"),
    ("feedback", "video_rule"): ("gap", "dominance"),
}


def _check_choices(cfg: Config) -> None:
    """Fields with a fixed set of values, and counts that must be at least 1."""
    for (section, name), allowed in CHOICES.items():
        value = getattr(getattr(cfg, section), name)
        if value not in allowed:
            raise ConfigError(f"{section}.{name}: {value!r} is not one of {', '.join(allowed)}")
    if cfg.dpo.rounds > 1 and (cfg.feedback.pairing != "onpolicy" or cfg.feedback.render_jobs):
        raise ConfigError(
            "dpo.rounds > 1 samples and renders in stage 05: it needs feedback.pairing onpolicy "
            "and feedback.render_jobs false"
        )
    for section, name in (
        ("feedback", "reward_seeds"),
        ("dpo", "rounds"),
        ("dpo", "unsafe_repeat"),
        ("grpo", "reward_seeds"),
        ("feedback", "harmful_samples_per_query"),
    ):
        if (getattr(getattr(cfg, section), name) or 1) < 1:  # None: unset
            raise ConfigError(f"{section}.{name} must be at least 1")


def _check_analysis(cfg: Config) -> None:
    """Stage 06's counts: at least one noise seed per video, no negative number of samples."""
    acfg = cfg.analysis
    if (
        any(not isinstance(n, int) or n < 1 for n in cfg.paradigms.best_of)
        or cfg.paradigms.testtime_rounds < 0
    ):
        raise ConfigError(
            f"paradigms.best_of must list counts >= 1 and paradigms.testtime_rounds be >= 0, got "
            f"{cfg.paradigms.best_of}, {cfg.paradigms.testtime_rounds}"
        )
    if acfg.eval_seeds < 1:
        raise ConfigError(f"analysis.eval_seeds must be at least 1, got {acfg.eval_seeds}")
    if acfg.sampled < 0 or acfg.sampled_temperature <= 0:
        raise ConfigError(
            "analysis.sampled must be at least 0 and analysis.sampled_temperature above 0 "
            f"(got {acfg.sampled}, {acfg.sampled_temperature})"
        )


def load_config(profile: str = "cpu", overrides: dict | None = None, config_dir: Path = CONFIG_DIR) -> Config:
    """Load a profile, apply overrides, and validate it into a :class:`Config`.

    The trainers' ``use_cpu`` follows ``device`` (the one device switch); ``auto`` dtypes and trainer ``bf16``
    become this machine's choice (vpolib/precision.py), recorded in ``cfg.precision``.
    """
    raw = apply_overrides(read_profile(profile, config_dir), overrides)
    if "precision" in raw:
        raise ConfigError("precision is measured when the profile loads (vpolib/precision.py): remove it")
    cfg = build_dataclass(Config, raw, "")
    _check_library_sections(cfg)
    _check_choices(cfg)
    _check_analysis(cfg)
    from vpolib.precision import resolve_dtypes  # imports torch: not on `import vpolib.config`

    cfg.precision = resolve_dtypes(cfg)
    for section in (cfg.sft, cfg.dpo, cfg.grpo):
        section.trainer = {**section.trainer, "use_cpu": cfg.device == "cpu"}
    return cfg
