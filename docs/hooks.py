"""mkdocs hooks of vecgen's documentation site (``mkdocs.yml``: ``hooks``).

* ``results.md`` is generated from the shipped run folders (``docs/results/<run>/results.json`` and ``report.md``):
  one row per run with its command, model, items and, for think runs, each method's accuracy; each run's
  ``report.md`` is a page of the site.
* ``<!-- backend-table -->`` and ``<!-- method-table -->`` in a page become the tables of the registered backends
  (``vecgen.models.backends``) and thinking methods (``vecgen.thinking.methods``) with their settings, so the docs
  list exactly what the code registers.
* Every public name of the modules the API reference shows (``::: module`` in ``docs/api/*.md``; the module's
  ``__all__``) that is a class or a function must have a docstring of its own: the build fails otherwise, naming them.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
import re
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File

DOCS = Path(__file__).resolve().parent


def _cell(run: dict, name: str) -> str:
    results = run.get("results") or {}
    if run.get("command") == "train" and isinstance(results, dict) and (results.get("dev") or {}).get("n"):
        dev = results["dev"]
        return f"{results.get('method')} {100 * dev['accuracy']:.1f} % (dev, {dev['n']} items)"
    if run.get("command") != "think" or not isinstance(results, dict):
        return ""
    parts = []
    for method, s in results.items():
        if isinstance(s, dict) and "accuracy" in s:
            parts.append(f"{method} {100 * s['accuracy']:.1f} %")
    return ", ".join(parts)


def results_page() -> str:
    """The ``results.md`` page: every shipped run folder with a link to its report."""
    lines = ["# Results", "",
             "Every run folder shipped under `docs/results` (each is what its command wrote: `results.json` with the full",
             "config and versions, records compressed as `records.jsonl.gz`, `report.md`, plots and `view.html`, which",
             "`vecgen view` rewrites). Accuracy is of each method or grid combination on the run's items; the report has",
             "intervals, paired tests and what the run found. Generated from the folders when the site is built.", "",
             "| run | command | model | items | accuracy | files |", "| --- | --- | --- | --- | --- | --- |"]
    folders = []
    for top in sorted(p for p in (DOCS / "results").iterdir() if p.is_dir()):
        # a folder of runs (benchmarks/train_seeds.py) lists each run that has finished
        nested = [p for p in sorted(top.iterdir()) if p.is_dir() and (p / "results.json").exists()]
        folders.extend(nested if nested and not (top / "results.json").exists() else [top])
    for folder in folders:
        path = folder / "results.json"
        run = json.loads(path.read_text()) if path.exists() else {}
        model = run.get("model")
        model = model.get("name", "") if isinstance(model, dict) else (model or "")
        report = folder / "report.md"
        rel = folder.relative_to(DOCS / "results").as_posix()
        name = f"[{rel}](results/{rel}/report.md)" if report.exists() else rel
        files = ", ".join(f"`{p.name}`" for p in sorted(folder.iterdir()) if p.is_file() and not p.name.startswith("."))
        lines.append(f"| {name} | `{run.get('command', '?')}` | {model} | {run.get('n_items') or ''} | "
                     f"{_cell(run, folder.name)} | {files} |")
    return "\n".join(lines) + "\n"


def on_files(files, config):
    """Add the generated ``results.md``."""
    files.append(File.generated(config, "results.md", content=results_page()))
    return files


def backend_table() -> str:
    """The registered backends: name, what it runs, options, capabilities, extra, placement."""
    from vecgen.models.backends import CAPABILITIES, backend_names, get_backend

    rows = ["| backend | runs | options | beyond decoding | needs | --device / --dtype |",
            "| --- | --- | --- | --- | --- | --- |"]
    for name in backend_names(auto=False):
        spec = get_backend(name)
        caps = ", ".join(f"`{c}`" for c in CAPABILITIES if c in spec.capabilities) or "decoding only"
        needs = f"`{spec.install_hint}`" if spec.install_hint else "nothing more"
        rows.append(f"| `{name}` | {spec.summary} | {', '.join(f'`--{o.replace(chr(95), chr(45))}`' for o in spec.options)} "
                    f"| {caps} | {needs} | {'yes' if spec.placement else 'no'} |")
    return "\n".join(rows) + "\n"


def method_table() -> str:
    """The registered thinking methods: name, summary, its own settings with their defaults and ranges."""
    from vecgen.thinking.methods import get_method, method_names

    rows = ["| method | what it feeds while thinking | its own settings (default) |", "| --- | --- | --- |"]
    for name in method_names():
        spec = get_method(name)
        settings = ", ".join(f"`--{k.replace(chr(95), chr(45))}` ({info.default})"
                             for k, info in spec.settings.model_fields.items()) or "none"
        rows.append(f"| `{name}` | {spec.summary} | {settings} |")
    return "\n".join(rows) + "\n"


def on_page_markdown(markdown, page, config, files):
    """Fill the registry tables."""
    if "<!-- backend-table -->" in markdown:
        markdown = markdown.replace("<!-- backend-table -->", backend_table())
    if "<!-- method-table -->" in markdown:
        markdown = markdown.replace("<!-- method-table -->", method_table())
    return markdown


def _own_doc(obj) -> str | None:
    doc = obj.__dict__.get("__doc__") if inspect.isclass(obj) else getattr(obj, "__doc__", None)
    if inspect.isclass(obj) and dataclasses.is_dataclass(obj) and doc and doc.startswith(obj.__name__ + "("):
        return None  # the signature dataclasses write when a class has no docstring
    return doc.strip() if isinstance(doc, str) and doc.strip() else None


def undocumented(module_name: str) -> list[str]:
    """The public classes and functions of ``module_name`` (its ``__all__``) without a docstring of their own."""
    module = importlib.import_module(module_name)
    missing = []
    for name in getattr(module, "__all__", ()):
        obj = getattr(module, name, None)
        if (inspect.isclass(obj) or inspect.isfunction(obj)) and _own_doc(obj) is None:
            missing.append(f"{module_name}.{name}")
    return missing


def on_pre_build(config):
    """Fail the build when a public name of a documented module has no docstring."""
    modules = []
    for page in sorted((DOCS / "api").glob("*.md")):
        modules += re.findall(r"^::: ([\w.]+)", page.read_text(), flags=re.M)
    missing = [m for mod in modules for m in undocumented(mod)]
    if missing:
        raise PluginError(f"{len(missing)} public names have no docstring: {', '.join(missing)}")
