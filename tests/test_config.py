import pytest

from vpolib.config import ConfigError, apply_overrides, load_config, read_profile


def test_profiles_load():
    for name in ("cpu", "smoke", "full"):
        cfg = load_config(name)
        assert cfg.profile == name


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
