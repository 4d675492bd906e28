"""The public API is typed: every public function and method has annotated parameters and a return type, and the
package ships ``py.typed``. (mypy itself runs in ``make lint``; it is too slow for the test run.)"""

import ast
import tomllib
from pathlib import Path

import pytest

import softprompt

PKG = Path(softprompt.__file__).parent
ROOT = PKG.parent.parent
ALWAYS = {"__init__", "__call__"}  # the constructor and call signatures are public API too


def _defs(body: list[ast.stmt], in_class: bool = False):
    """(function, is_method) for module- and class-level defs of public classes (nested functions skipped)."""
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node, in_class
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            yield from ((d, True) for d, _ in _defs(node.body, True))
        elif isinstance(node, ast.If | ast.Try):
            yield from _defs(node.body + node.orelse, in_class)


def unannotated(path: Path) -> list[str]:
    """``name: what is missing`` for each public function of ``path`` lacking an annotation."""
    out = []
    for fn, method in _defs(ast.parse(path.read_text()).body):
        if fn.name.startswith("_") and fn.name not in ALWAYS:
            continue
        a = fn.args
        params = a.posonlyargs + a.args
        static = any(ast.unparse(d) == "staticmethod" for d in fn.decorator_list)
        if method and not static:
            params = params[1:]  # self / cls
        params += a.kwonlyargs + [p for p in (a.vararg, a.kwarg) if p is not None]
        missing = [p.arg for p in params if p.annotation is None]
        if fn.returns is None and fn.name != "__init__":
            missing.append("return")
        if missing:
            out.append(f"{fn.name} (line {fn.lineno}): {', '.join(missing)}")
    return out


@pytest.mark.parametrize("path", sorted(PKG.rglob("*.py")), ids=lambda p: str(p.relative_to(PKG)))
def test_public_functions_are_annotated(path):
    assert unannotated(path) == []


def test_the_checker_sees_a_missing_annotation(tmp_path):
    f = tmp_path / "m.py"
    f.write_text(
        "def ok(x: int) -> int: ...\n"
        "def _private(x): ...\n"
        "def bad(model, n: int = 1): ...\n"
        "class C:\n"
        "    def __init__(self, a): ...\n"
        "    def m(self) -> None: ...\n"
    )
    assert unannotated(f) == ["bad (line 3): model, return", "__init__ (line 5): a"]


def test_py_typed_is_shipped():
    assert (PKG / "py.typed").is_file()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "py.typed" in project["tool"]["setuptools"]["package-data"]["softprompt"]
    assert project["tool"]["mypy"]["files"] == ["src/softprompt"]
    assert any(dep.startswith("mypy") for dep in project["project"]["optional-dependencies"]["test"])
