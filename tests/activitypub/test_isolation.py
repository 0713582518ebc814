"""activitypub/ is a protocol package of its own: it must load and work without the app."""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[2] / "activitypub"
ALLOWED_THIRD_PARTY = {"httpx", "cryptography", "idna"}


def test_every_module_imports_without_the_application() -> None:
    modules = [f"activitypub.{m.name}" for m in pkgutil.iter_modules([str(PACKAGE_DIR)])]
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "app = ('fediverse_stories', 'sqlalchemy', 'starlette')\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] in app]\n"
        "assert not loaded, loaded\n"
        "print(len(sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def test_no_module_imports_anything_but_stdlib_httpx_cryptography_and_idna() -> None:
    stdlib = set(sys.stdlib_module_names)
    for path in PACKAGE_DIR.glob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                assert top in stdlib or top in ALLOWED_THIRD_PARTY or top == "activitypub", (
                    f"{path.name} imports {name}"
                )
