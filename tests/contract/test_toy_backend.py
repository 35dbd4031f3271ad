"""The backend registry's proof (issue 35, item 2): a toy backend registered from test code
(:mod:`helpers.toy_backend`: no KV cache, every position recomputed) passes the whole backend contract suite, and
``vecgen generate --backend toy`` runs it, with nothing under ``src/`` naming it.

The contract's tests that take a backend case are collected again here with this module's ``case`` fixture (the toy
backend on the families its spec names: Qwen2 and GPT-2, with learned positions), in the slow tier (the toy recomputes
every position, about 30 s per family); the fast tier runs the registration and ``vecgen generate`` tests.
"""

from __future__ import annotations

import inspect

import pytest

import test_backend_contract as contract
from helpers import toy_backend
from helpers.cli import cli

TOY = toy_backend.TOY


@pytest.fixture(autouse=True, scope="module")
def registered():
    """The toy backend is registered while this module's tests run, and only then."""
    from vecgen.models.backends import unregister_backend

    toy_backend.register()
    yield
    unregister_backend("toy")

for _name, _fn in vars(contract).items():  # the contract's backend tests, run here on the toy backend
    if _name.startswith("test_") and callable(_fn) and "case" in inspect.signature(_fn).parameters:
        globals()[_name] = _fn


@pytest.fixture(params=[pytest.param(("toy", f), id=f"toy-{f}", marks=pytest.mark.slow) for f in TOY.families])
def case(request, tiny_lm, tiny_model_dir, tiny_llamacpp):
    return contract.build_case(*request.param, tiny_lm, tiny_model_dir, tiny_llamacpp)


def test_the_toy_backend_is_registered_and_listed(capsys):
    from vecgen.models.backends import backend_names, get_backend

    assert "toy" in backend_names() and get_backend("toy") is TOY
    code, out, _ = cli(["models"], capsys)
    assert code == 0 and "toy" in out
    code, out, _ = cli(["generate", "--help"], capsys)
    assert code == 0 and "toy (a test backend" in " ".join(out.replace("│", " ").split())


def test_vecgen_generate_runs_on_it_and_equals_transformers(tiny_model_dir, capsys):
    model = str(tiny_model_dir("qwen2"))
    args = ["generate", "Hello there", "-m", model, "--max-new-tokens", "6", "--device", "cpu"]
    code, toy_out, err = cli([*args, "--backend", "toy"], capsys)
    assert code == 0, err
    code, hf_out, err = cli([*args, "--backend", "transformers"], capsys)
    assert code == 0, err
    assert toy_out == hf_out and toy_out.strip()  # greedy, float32: the same tokens without a KV cache
    code, _, err = cli([*args, "--backend", "toy", "--n-ctx", "64"], capsys)
    assert code == 2 and "n_ctx" in err.replace("--n-ctx", "n_ctx") and "toy" in err
