"""Big-model placement (``--device-map``): a model whose layers are split across placements (here the CPU and
accelerate's disk offload, the only two this machine has) decodes exactly like the unsplit model."""

from __future__ import annotations

import pytest

from vecgen.config import SamplingConfig
from vecgen.decoding import generate
from vecgen.errors import ConfigError

pytestmark = pytest.mark.slow  # the whole file is the slow tier

SPLIT = {"model.embed_tokens": "cpu", "model.rotary_emb": "cpu", "model.layers.0": "cpu", "model.layers.1": "disk",
         "model.norm": "cpu", "lm_head": "cpu"}


@pytest.fixture(scope="module")
def split_and_whole(tiny_model_dir, tmp_path_factory):
    import os

    from vecgen.models import load_model

    os.environ["VECGEN_CACHE"] = str(tmp_path_factory.mktemp("cache"))  # offload files go under the cache
    path = str(tiny_model_dir("qwen2"))
    whole = load_model(path, device="cpu")
    split = load_model(path, device_map=SPLIT)
    yield split, whole
    del os.environ["VECGEN_CACHE"]


def test_the_split_model_really_is_split(split_and_whole):
    split, _ = split_and_whole
    assert split.model.hf_device_map == SPLIT
    assert next(split.model.model.layers[1].parameters()).device.type == "meta"  # weights live on disk
    assert split.device.type == "cpu"  # inputs go to the embedding's device


@pytest.mark.parametrize("mixing", ["onehot", "soft", "full", "hidden"])
def test_split_model_decodes_token_for_token_like_the_whole_one(split_and_whole, mixing):
    split, whole = split_and_whole
    prompts = [whole.encode("The capital of France is"), whole.encode("Once upon a time")]
    sampling = SamplingConfig(max_new_tokens=8)
    a = generate(whole, prompts, sampling=sampling, mixing=mixing)
    b = generate(split, prompts, sampling=sampling, mixing=mixing)
    assert [r.tokens.tolist() for r in a.rows] == [r.tokens.tolist() for r in b.rows]


def test_an_input_embedding_on_disk_is_refused(tiny_model_dir):
    from vecgen.models import load_model

    with pytest.raises(ConfigError, match="offloads the input embedding to disk"):
        load_model(str(tiny_model_dir("qwen2")), device_map={**SPLIT, "model.embed_tokens": "disk"})


@pytest.mark.parametrize("args,fragment", [
    (["--device-map", "everywhere"], "--device-map 'everywhere'"),
    (["--device-map", '{"model.layers.0": "tpu"}'], "unknown device 'tpu'"),
    (["--device-map", "{}"], "non-empty object"),
    (["--device-map", "auto", "--max-memory", "0=lots"], "not a size"),
])
def test_bad_placements_are_one_line_before_loading(args, fragment, capsys, monkeypatch, tmp_path):
    from helpers.cli import cli, never_load, one_line_error

    never_load(monkeypatch)
    code, _, err = cli(["think", *args, "--out-dir", tmp_path / "runs"], capsys)
    one_line_error(code, err, fragment)
    assert not (tmp_path / "runs").exists()
