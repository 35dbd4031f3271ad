"""The settings of ``vecgen train`` (:class:`TrainSettings`), validated before any model loads, and the training
data they name (:func:`load_train_data`, :func:`load_dev_data`)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..benchmarks_data import Task, load_benchmark, load_task_file, tasks_from_records
from ..config import format_validation_error, validation_params
from ..errors import ConfigError
from ..models import TRAINED_METHODS

#: ``--train-data`` generators (anything else is a task file or ``hf:OWNER/NAME[:SPLIT]``).
GENERATORS = ("prosqa", "multiplication")


class TrainSettings(BaseModel):
    """Everything that shapes a training run (``vecgen train``'s flags; defaults are COCONUT's ProsQA settings,
    Hao et al. 2024: c = 1, 6 stages of 5 epochs, 50 epochs, batch 32, lr 1e-4, thoughts padded to the last stage).

    Attributes:
        method: ``nocot``, ``cot``, ``coconut`` or ``pause``.
        train_data: ``prosqa`` (generated, :func:`~vecgen.benchmarks_data.prosqa.generate_prosqa`),
            ``multiplication[:MxN]`` (generated, default 4x4), a coconut-format ``.json`` / JSONL task file with
            ``steps``, or ``hf:OWNER/NAME[:SPLIT]`` (a hub dataset with ``question``/``steps``/``answer``, e.g.
            GSM8k-Aug; needs ``datasets`` and network).
        train_size: items generated for a generator (ignored for files).
        data_seed: the generator's seed (None: ``seed``).
        dev_data: the dev set (a ``vecgen think --benchmark`` name or file, or ``multiplication:MxN``); None: the
            ProsQA validation split for ``prosqa``, the ``multiplication`` benchmark of the same digits.
        dev_limit: dev items answered after every epoch (the learning curve; 0 = none); the final model is
            evaluated on all of them.
        model: ``scratch`` (a GPT-2 built from ``layers``/``hidden``/``heads`` with a word-level tokenizer made from
            the data) or a Hugging Face causal LM (registry name, folder or hub id; its tokenizer gets the markers).
        layers, hidden, heads: the scratch model's depth, width and attention heads.
        c: continuous thoughts per replaced step (COCONUT's c, >= 1).
        stages: the curriculum's last stage (COCONUT's ``max_latent_stage``, >= 1).
        epochs_per_stage: epochs per stage (>= 1); epochs: all epochs (>= 1; after the last stage's start the run
            stays there).
        pad_to_last_stage: every example of stage k gets c·k thoughts, even beyond its number of steps (COCONUT's
            ``pad_latent_to_max``, on for ProsQA); off: c·min(k, steps).
        stage_mix: the probability that an example is trained at a stage drawn uniformly from 0 .. the current one
            (COCONUT's ``uniform_prob``; 0 = off).
        batch_size, lr, weight_decay: AdamW's batch (sequences), learning rate and weight decay; the optimizer is
            reset at every stage.
        max_grad_norm: gradient clipping (None = none).
        seed: model initialisation, data order, stage mixing.
        max_answer_tokens: the answer budget of dev evaluations (tokens).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    method: str = "coconut"
    train_data: str = "prosqa"
    train_size: int = Field(4000, ge=1, le=1_000_000)
    data_seed: int | None = Field(None, ge=0, le=2**32 - 1)
    dev_data: str | None = None
    dev_limit: int = Field(100, ge=0, le=1_000_000)
    model: str = "scratch"
    layers: int = Field(2, ge=1, le=96)
    hidden: int = Field(128, ge=8, le=16384)
    heads: int = Field(4, ge=1, le=256)
    c: int = Field(1, ge=1, le=64)
    stages: int = Field(6, ge=1, le=64)
    epochs_per_stage: int = Field(5, ge=1, le=100_000)
    epochs: int = Field(50, ge=1, le=100_000)
    pad_to_last_stage: bool = True
    stage_mix: float = Field(0.0, ge=0.0, le=1.0)
    batch_size: int = Field(32, ge=1, le=65_536)
    lr: float = Field(1e-4, gt=0.0, le=10.0)
    weight_decay: float = Field(0.01, ge=0.0, le=100.0)
    max_grad_norm: float | None = Field(None, gt=0.0)
    seed: int = Field(0, ge=0, le=2**32 - 1)
    max_answer_tokens: int = Field(32, ge=1, le=65_536)

    @classmethod
    def create(cls, **values: Any) -> "TrainSettings":
        """Validate (``None`` values ignored).

        Raises:
            ConfigError: an unknown method, a value out of range (field, value, range), a scratch width that
                the heads do not divide.
        """
        values = {k: v for k, v in values.items() if v is not None}
        method = values.get("method", "coconut")
        if method not in TRAINED_METHODS:
            raise ConfigError(f"unknown method {method!r} to train; choose from: {', '.join(TRAINED_METHODS)}",
                              param="method")
        try:
            s = cls(**values)
        except ValidationError as exc:
            raise ConfigError(format_validation_error(exc, "training settings"),
                              param=validation_params(exc)) from None
        if s.model == "scratch" and s.hidden % s.heads:
            raise ConfigError(f"hidden={s.hidden} is not a multiple of heads={s.heads}", param="hidden")
        return s

    @property
    def latent(self) -> bool:
        """The method replaces steps by thought slots (``coconut``, ``pause``)."""
        return self.method in ("coconut", "pause")

    def stage_of(self, epoch: int) -> int:
        """The curriculum stage of ``epoch`` (0-based): ``epoch // epochs_per_stage``, at most ``stages``; 0 for
        ``nocot`` / ``cot``."""
        return min(epoch // self.epochs_per_stage, self.stages) if self.latent else 0

    @property
    def n_thoughts(self) -> int:
        """Thoughts at inference after the last stage: ``c · stages`` (0 for ``nocot`` / ``cot``)."""
        return self.c * self.stages if self.latent else 0


def _generator(spec: str) -> tuple[str, str] | None:
    name, _, arg = spec.partition(":")
    return (name, arg) if name in GENERATORS else None


def load_train_data(s: TrainSettings) -> list[Task]:
    """The training items ``s`` names, checked for what the method needs.

    Raises:
        ConfigError: an unknown source, a file that cannot be read, items without ``steps`` (every method but
            ``nocot`` needs them), more stages than the longest chain without ``pad_to_last_stage``.
    """
    seed = s.seed if s.data_seed is None else s.data_seed
    gen = _generator(s.train_data)
    if gen is not None:
        name, arg = gen
        if name == "prosqa":
            if arg:
                raise ConfigError(f"train_data {s.train_data!r}: prosqa takes no argument", param="train_data")
            from ..benchmarks_data.prosqa import generate_prosqa

            tasks = generate_prosqa(s.train_size, seed=seed, prefix="prosqa-train")
        else:
            from ..benchmarks_data.multiplication import generate_multiplication

            tasks = generate_multiplication(s.train_size, digits=arg or "4x4", seed=seed, prefix="mult-train")
    elif s.train_data.startswith("hf:"):
        tasks = _hub_tasks(s.train_data[3:])
    else:
        tasks = load_task_file(s.train_data)
    check_steps(tasks, s, what=f"train_data {s.train_data}")
    return tasks


def check_steps(tasks: list[Task], s: TrainSettings, *, what: str) -> None:
    """Refuse items the method cannot train on (the rules of :func:`load_train_data`)."""
    if s.method != "nocot":
        bare = next((t for t in tasks if not t.steps), None)
        if bare is not None:
            raise ConfigError(f"{what}: item {bare.id} has no 'steps'; {s.method} trains on the reasoning steps "
                              "(a list of strings per item, the coconut format), or train nocot", param="train_data")
    if s.latent and not s.pad_to_last_stage:
        longest = max(len(t.steps) for t in tasks)
        if s.stages > longest:
            raise ConfigError(f"stages={s.stages} is more than the longest chain in {what} ({longest} steps): the "
                              f"last stages would change nothing; use stages <= {longest} or pad_to_last_stage",
                              param="stages")


def _hub_tasks(spec: str) -> list[Task]:
    name, _, split = spec.partition(":")
    try:
        import datasets
    except ImportError:
        raise ConfigError("hf: training data needs the datasets package: pip install datasets",
                          param="train_data") from None
    try:
        rows = datasets.load_dataset(name, split=split or "train")
    except Exception as exc:  # noqa: BLE001 - the hub's errors (offline, unknown name) are bad input here
        raise ConfigError(f"could not load the hub dataset {name!r} ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0] if str(exc) else ''}); offline? save it as a coconut-format "
                          "JSON on a connected machine and pass its path", param="train_data") from None
    return tasks_from_records(list(rows), source=f"hf:{spec}", id_prefix=name.replace("/", "-"))


def dev_spec(s: TrainSettings) -> str | None:
    """The dev benchmark of ``s`` (:attr:`TrainSettings.dev_data`, else the generator's own dev set)."""
    if s.dev_data is not None:
        return s.dev_data
    gen = _generator(s.train_data)
    if gen is None:
        return None
    return "prosqa" if gen[0] == "prosqa" else f"multiplication:{gen[1] or '4x4'}"


def load_dev_data(s: TrainSettings) -> list[Task]:
    """The dev items (:func:`dev_spec`; empty when there are none).

    Raises:
        ConfigError: a dev set that cannot be loaded.
    """
    spec = dev_spec(s)
    if spec is None:
        return []
    if spec.startswith("multiplication:"):
        return load_benchmark("multiplication", source=spec.partition(":")[2] or "shipped")
    return load_benchmark(spec)


__all__ = ["GENERATORS", "TrainSettings", "check_steps", "dev_spec", "load_dev_data", "load_train_data"]
