"""What a chapter's result depends on, hashed: the execution cache's key and the scoreboard's staleness test.

A chapter's fingerprint covers the notebook's source (code and markdown, never outputs), every module of this
repository that the notebook imports, followed transitively (its own ``repro/<slug>/``, the core modules, shared
code such as another chapter's module it borrows, and the Triton kernels under ``kernels/``), the validated
parameters, the installed versions of the key packages, and the data files the last run resolved (pinned checksums,
or the size of an unpinned file). jupyter-cache would hash the code cells only, and miss a library change.
"""
from __future__ import annotations

import ast
import hashlib
import json
from importlib import metadata
from pathlib import Path
from typing import Any

import nbformat

from repro.paths import REPO_ROOT

KEY_PACKAGES = ("torch", "triton", "torch-geometric", "numpy", "scipy", "pandas", "scikit-learn", "pymetis",
                "papermill", "nbclient", "myst-nb", "matplotlib")


def _digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def _module_file(name: str) -> Path | None:
    """The file of ``repro.x.y`` (``repro.kernels.z`` lives in kernels/), or None when it is not ours."""
    parts = name.split(".")
    if parts[0] != "repro":
        return None
    base = REPO_ROOT / "kernels" if parts[1:2] == ["kernels"] else REPO_ROOT / "repro"
    rest = parts[2:] if parts[1:2] == ["kernels"] else parts[1:]
    candidate = base.joinpath(*rest) if rest else base
    for path in (candidate.with_suffix(".py"), candidate / "__init__.py"):
        if path.is_file():
            return path
    return None


def _module_name(path: Path) -> str:
    rel = path.relative_to(REPO_ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[0] == "kernels":
        parts = ["repro", "kernels", *parts[1:]]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(source: str, package: str | None) -> set[str]:
    """Every module name ``source`` imports, with ``from a import b`` also yielding ``a.b`` (b may be a module)."""
    lines = [ln for ln in source.splitlines() if not ln.lstrip().startswith(("%", "!"))]
    try:
        tree = ast.parse("\n".join(lines))
    except SyntaxError:
        return set()
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level and package:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*anchor, module] if module else anchor)
            names.add(module)
            names.update(f"{module}.{a.name}" for a in node.names)
    return names


def code_files(notebook: Path) -> list[Path]:
    """Our modules that the notebook depends on, transitively, with the packages' ``__init__`` files."""
    nb = nbformat.read(notebook, as_version=4)
    pending = set().union(*(_imports(c.source, None) for c in nb.cells if c.cell_type == "code"))
    seen: set[Path] = set()
    while pending:
        name = pending.pop()
        path = _module_file(name)
        if path is None or path in seen:
            continue
        seen.add(path)
        module = _module_name(path)
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        pending |= _imports(path.read_text(), package)
        parent = module.rpartition(".")[0]
        if parent:
            pending.add(parent)
    return sorted(seen)


def _source_digest(notebook: Path) -> str:
    nb = nbformat.read(notebook, as_version=4)
    return _digest([(c.cell_type, c.source) for c in nb.cells])


def package_versions() -> dict[str, str]:
    out = {}
    for name in KEY_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


REGISTRY = REPO_ROOT / "repro" / "chapters.py"


def compute(notebook: Path, parameters: dict[str, Any], data_files: dict[str, str] | None = None,
            registry_entry: str = "") -> dict[str, Any]:
    """The fingerprint's parts and their combined ``digest``.

    The chapter registry (repro/chapters.py) holds every chapter's entry: instead of the whole file, which would make
    every chapter stale when one chapter gains a parameter, the fingerprint takes this chapter's ``registry_entry``.
    """
    code = {str(p.relative_to(REPO_ROOT)): hashlib.sha256(p.read_bytes()).hexdigest()[:16]
            for p in code_files(notebook) if p != REGISTRY}
    if registry_entry:
        code["repro/chapters.py (this chapter's entry)"] = hashlib.sha256(registry_entry.encode()).hexdigest()[:16]
    parts = {
        "notebook": _source_digest(notebook)[:16],
        "code": code,
        "parameters": parameters,
        "packages": package_versions(),
        "data": dict(sorted((data_files or {}).items())),
    }
    return {**parts, "digest": _digest(parts)}


def differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What changed between two fingerprints, in words (empty when they match)."""
    if not old:
        return ["no fingerprint recorded"]
    out = []
    if old.get("notebook") != new.get("notebook"):
        out.append("the notebook's source")
    old_code, new_code = old.get("code", {}), new.get("code", {})
    changed = sorted(k for k in set(old_code) | set(new_code) if old_code.get(k) != new_code.get(k))
    if changed:
        out.append("code: " + ", ".join(changed[:4]) + (f" (+{len(changed) - 4} more)" if len(changed) > 4 else ""))
    if old.get("parameters") != new.get("parameters"):
        out.append("parameters")
    versions = [f"{k} {old.get('packages', {}).get(k)} -> {v}" for k, v in new.get("packages", {}).items()
                if old.get("packages", {}).get(k) != v]
    if versions:
        out.append("packages: " + ", ".join(versions))
    if old.get("data") != new.get("data"):
        out.append("data files")
    return out
