"""Every third-party package the project's code imports is declared, pinned, in setup.cfg."""

from __future__ import annotations

import ast
import configparser
import importlib.metadata as metadata
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("tuning", "models", "search_spaces", "benchmarks")


def imported_top_level_modules() -> set[str]:
    found = set()
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    found |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - set(PACKAGES) - {"__future__"}


def declared() -> dict[str, str]:
    """Normalised distribution name -> its requirement line, from install_requires and extras."""
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    lines = config["options"]["install_requires"].split("\n")
    for extra in config["options.extras_require"].values():
        lines += extra.split("\n")
    requirements = {}
    for line in filter(None, (line.strip() for line in lines)):
        name = re.split(r"[\[=<>!~ ]", line, maxsplit=1)[0]
        requirements[re.sub(r"[-_.]+", "-", name).lower()] = line
    return requirements


def test_every_imported_package_is_declared_with_an_exact_version():
    distributions = metadata.packages_distributions()
    requirements = declared()
    missing, loose = [], []
    for module in sorted(imported_top_level_modules()):
        names = [re.sub(r"[-_.]+", "-", d).lower() for d in distributions.get(module, [module])]
        line = next((requirements[n] for n in names if n in requirements), None)
        if line is None:
            missing.append(f"{module} ({', '.join(names)})")
        elif "==" not in line:
            loose.append(line)
    assert missing == [], "imported but not in setup.cfg"
    assert loose == [], "declared without an exact version"


def test_declared_pins_are_the_installed_versions():
    for name, line in declared().items():
        pinned = line.split("==", 1)[1].strip()
        assert metadata.version(name).split("+")[0] == pinned, line  # 2.13.0+cpu is 2.13.0
