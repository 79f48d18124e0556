"""Every third-party module imported under repro/ and kernels/ comes from a distribution that pyproject declares.

A machine that already has a package installed hides a missing declaration (safetensors did, once): this test reads
the imports statically, so it fails on any machine, not only on a fresh one.
"""
import ast
import re
import sys
from importlib.metadata import packages_distributions

from repro.paths import REPO_ROOT

try:
    import tomllib
except ImportError:  # Python 3.10: the dev extra installs tomli
    import tomli as tomllib

# Modules that are not distributions of their own, or that come with one we declare under another name.
EXCEPTIONS = {
    "repro": "this project",
}


def imported_top_level_modules() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for folder in ("repro", "kernels"):
        for path in (REPO_ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    found.setdefault(name.split(".")[0], set()).add(str(path.relative_to(REPO_ROOT)))
    return found


def declared_distributions() -> set[str]:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    specs = list(project["dependencies"]) + [s for extra in project["optional-dependencies"].values() for s in extra]
    return {re.split(r"[<>=!~\[; ]", s, maxsplit=1)[0].lower().replace("_", "-") for s in specs}


def test_every_third_party_import_is_declared():
    distributions = packages_distributions()
    declared = declared_distributions()
    missing = []
    for module, files in sorted(imported_top_level_modules().items()):
        if module in sys.stdlib_module_names or module in EXCEPTIONS:
            continue
        owners = {d.lower().replace("_", "-") for d in distributions.get(module, [])}
        if not owners and module.lower().replace("_", "-") in declared:
            continue  # an optional extra that this machine has not installed, declared under the module's name
        if not owners:
            missing.append(f"{module} (imported in {sorted(files)[0]}) is not installed from any distribution")
        elif not owners & declared:
            missing.append(f"{module} (imported in {sorted(files)[0]}) comes from {sorted(owners)}, "
                           "which pyproject.toml does not declare")
    assert not missing, "declare these in pyproject.toml:\n" + "\n".join(missing)
