import pytest

from vecgen.config import PRESETS, SamplingConfig
from vecgen.errors import ConfigError


def test_presets_match_the_model_card():
    assert PRESETS["qwen3-non-thinking"] == {"temperature": 0.7, "top_p": 0.8, "top_k": 20, "min_p": 0.0}
    assert PRESETS["qwen3-thinking-card"] == {"temperature": 0.6, "top_p": 0.95, "top_k": 20, "min_p": 0.0}
    assert SamplingConfig.create(preset="greedy").greedy


@pytest.mark.parametrize(
    "field,value,fragment",
    [
        ("temperature", 2.5, "[0, 2]"),
        ("temperature", -0.1, "[0, 2]"),
        ("top_p", 0.0, "(0, 1]"),
        ("top_p", 1.5, "(0, 1]"),
        ("top_k", -1, ">= 0"),
        ("min_p", 1.2, "[0, 1]"),
        ("max_new_tokens", 0, ">= 1"),
    ],
)
def test_invalid_values_name_field_value_and_range(field, value, fragment):
    with pytest.raises(ConfigError) as exc:
        SamplingConfig.create(**{field: value})
    msg = str(exc.value)
    assert f"{field}={value!r}" in msg and fragment in msg


def test_boundaries_are_accepted():
    cfg = SamplingConfig.create(temperature=2.0, top_p=1.0, top_k=0, min_p=1.0, max_new_tokens=1)
    assert cfg.temperature == 2.0 and cfg.min_p == 1.0


def test_priority_preset_then_yaml_then_flags(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("sampling:\n  preset: qwen3-non-thinking\n  top_k: 5\n  seed: 3\n")
    cfg = SamplingConfig.create(config_file=path, temperature=0.2, top_p=None)
    assert (cfg.temperature, cfg.top_p, cfg.top_k, cfg.seed) == (0.2, 0.8, 5, 3)
    cfg = SamplingConfig.create(preset="greedy", config_file=path)  # explicit preset beats the file's
    assert cfg.temperature == 0.0 and cfg.top_k == 5


def test_bad_yaml_and_unknown_things(tmp_path):
    with pytest.raises(ConfigError, match="unknown sampling preset"):
        SamplingConfig.create(preset="creative")
    bad = tmp_path / "bad.yaml"
    bad.write_text("temperature: [1\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        SamplingConfig.create(config_file=bad)
    extra = tmp_path / "extra.yaml"
    extra.write_text("temprature: 0.5\n")
    with pytest.raises(ConfigError, match="temprature"):
        SamplingConfig.create(config_file=extra)
    with pytest.raises(ConfigError, match="not found"):
        SamplingConfig.create(config_file=tmp_path / "missing.yaml")
