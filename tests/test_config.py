import pytest

from vpolib.config import load_config
from vpolib.profiles import ConfigError, apply_overrides, read_profile


def _leaves(node, path=()):
    """(dotted path, value) of every leaf of a raw profile mapping (dicts the config keeps whole count as leaves)."""
    for key, value in node.items():
        if isinstance(value, dict) and key not in ("trainer", "lora", "teacher_rates", "cogvideox_call"):
            yield from _leaves(value, (*path, key))
        else:
            yield ".".join((*path, key)), value


def test_every_profile_key_reaches_the_config():
    for name in ("cpu", "smoke", "quick", "full"):
        raw, cfg = read_profile(name), load_config(name)
        for dotted, value in _leaves(raw):
            got = cfg
            for part in dotted.split("."):
                got = getattr(got, part)
            resolved = cfg.precision["resolved"]  # what each "auto" became (vpolib/precision.py)
            if dotted.endswith(".trainer"):  # the trainers' use_cpu is added from `device`
                got = {k: v for k, v in got.items() if k != "use_cpu"}
                value = {k: resolved[f"{dotted}.{k}"] if v == "auto" else v for k, v in value.items()}
            elif value == "auto":
                value = resolved[dotted]
            assert got == value, f"{name}: {dotted} is {got!r}, the profile says {value!r}"


def test_device_is_the_one_device_switch():
    assert load_config("cpu").sft.trainer["use_cpu"] is True
    full = load_config("full")
    assert (
        full.device == "cuda"
        and full.sft.trainer["use_cpu"] is False
        and full.dpo.trainer["use_cpu"] is False
    )
    assert load_config("smoke", {"device": "cuda"}).dpo.trainer["use_cpu"] is False
    with pytest.raises(ConfigError, match=r"sft.trainer.use_cpu is set by the top-level `device`"):
        load_config("smoke", {"sft.trainer.use_cpu": True})


@pytest.mark.parametrize(
    ("key", "typo", "closest"),
    [
        ("sft.trainer", "learning_rte", "learning_rate"),
        ("dpo.trainer", "betta", "beta"),
        ("sft.lora", "lora_alpa", "lora_alpha"),
        ("dpo.lora", "target_module", "target_modules"),
    ],
)
def test_a_typo_in_a_trainer_or_lora_section_fails_at_load(tmp_path, key, typo, closest):
    """Checked against TRL's SFTConfig/DPOConfig and PEFT's LoraConfig fields, before any stage runs."""
    section, sub = key.split(".")
    (tmp_path / "typo.yaml").write_text(f"{section}:\n  {sub}:\n    {typo}: 1\n")
    with pytest.raises(ConfigError, match=rf"'{typo}' \(did you mean '{closest}'\?\) in {key}"):
        load_config("typo", config_dir=tmp_path)
    with pytest.raises(ConfigError, match=rf"did you mean '{closest}'"):
        load_config("smoke", {f"{key}.{typo}": 1})


def test_an_unknown_key_names_the_closest_or_where_it_moved():
    with pytest.raises(ConfigError, match=r"'backend' \(moved to video.backend\) in feedback"):
        load_config("smoke", {"feedback.backend": "cogvideox"})  # the video model has its own section
    with pytest.raises(ConfigError, match=r"'judge' \(moved to judge.kind\) in refine"):
        load_config("smoke", {"refine.judge": "llm"})
    with pytest.raises(ConfigError, match=r"'n_querys' \(did you mean 'n_queries'\?\) in refine"):
        load_config("smoke", {"refine.n_querys": 3})
    assert load_config("smoke", {"video.backend": "cogvideox"}).video.backend == "cogvideox"


def test_smoke_extends_cpu_with_tiny_counts():
    cpu, smoke = load_config("cpu"), load_config("smoke")
    assert smoke.data.limit is not None and cpu.data.limit is None
    assert smoke.data.root == cpu.data.root
    assert smoke.data.heldout_size < cpu.data.heldout_size


def test_overrides_dotted_keys():
    cfg = load_config("smoke", {"data.heldout_size": 7, "seed": 3})
    assert cfg.data.heldout_size == 7 and cfg.seed == 3


def test_unknown_key_is_a_clear_error():
    with pytest.raises(ConfigError, match="unknown key.*heldout_sise"):
        load_config("smoke", {"data.heldout_sise": 7})


def test_wrong_type_is_a_clear_error():
    with pytest.raises(ConfigError, match="data.heldout_size must be"):
        load_config("smoke", {"data.heldout_size": "many"})
    with pytest.raises(ConfigError, match="must be"):
        load_config("smoke", {"data.drop_too_long": 1})


def test_int_accepted_where_float_expected(tmp_path):
    (tmp_path / "p.yaml").write_text("feedback:\n  margin: 1\n")
    assert load_config("p", config_dir=tmp_path).feedback.margin == 1.0


def test_unknown_profile(tmp_path):
    with pytest.raises(ConfigError, match="no profile 'nope'"):
        read_profile("nope", tmp_path)


def test_extends_chain(tmp_path):
    (tmp_path / "a.yaml").write_text("seed: 1\ndata:\n  limit: 5\n  heldout_size: 2\n")
    (tmp_path / "b.yaml").write_text("extends: a\ndata:\n  limit: 9\n")
    cfg = load_config("b", config_dir=tmp_path)
    assert (cfg.seed, cfg.data.limit, cfg.data.heldout_size) == (1, 9, 2)


def test_apply_overrides_does_not_mutate():
    raw = {"data": {"limit": 1}}
    out = apply_overrides(raw, {"data.limit": 2})
    assert raw["data"]["limit"] == 1 and out["data"]["limit"] == 2


def test_full_profile_uses_the_papers_instruction():
    from vpolib.config import load_config

    assert load_config("full").instruction == "paper" and load_config("cpu").instruction == "short"
