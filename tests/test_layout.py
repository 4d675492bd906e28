"""The package's shape: no import cycles, lower layers never import higher ones, a complete public API."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import softprompt

PKG = Path(softprompt.__file__).parent

# Lowest first. A module may import its own layer or lower ones. The longest matching prefix decides.
LAYERS: list[tuple[str, ...]] = [
    ("softprompt.errors", "softprompt.io"),
    ("softprompt.assets",),  # below core: load_model resolves the built-in model names
    ("softprompt.core", "softprompt.prompting", "softprompt.testing"),
    ("softprompt.methods",),
    ("softprompt.files", "softprompt.data"),
    ("softprompt.tasks",),
    ("softprompt.training",),
    ("softprompt.experiments", "softprompt.serve"),
    ("softprompt.commands", "softprompt.cli", "softprompt.__main__"),
    ("softprompt",),
]


def layer_of(module: str) -> int:
    best, rank = "", None
    for i, names in enumerate(LAYERS):
        for n in names:
            if (module == n or module.startswith(n + ".")) and len(n) > len(best):
                best, rank = n, i
    assert rank is not None, f"{module} is in no layer: add it to LAYERS"
    return rank


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, name: str) -> set[str]:
    """Every softprompt module ``path`` imports, at module level or inside functions (TYPE_CHECKING excluded)."""
    tree = ast.parse(path.read_text())
    is_pkg = path.name == "__init__.py"
    skip = {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for n in ast.walk(node)
    }
    out = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("softprompt")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                here = name.split(".") if is_pkg else name.split(".")[:-1]
                here = here[: len(here) - node.level + 1]
                base = ".".join(here + ([base] if base else []))
            if not base.startswith("softprompt"):
                continue
            for a in node.names:  # `from pkg import submodule` imports the submodule
                sub = f"{base}.{a.name}"
                out.add(sub if sub in MODULES else base)
    return out - {name}


MODULES = {module_name(p): p for p in PKG.rglob("*.py")}
GRAPH = {m: imports_of(p, m) for m, p in MODULES.items()}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_upward_import(module):
    upward = [t for t in sorted(GRAPH[module]) if t in MODULES and layer_of(t) > layer_of(module)]
    assert not upward, f"{module} (layer {layer_of(module)}) imports higher layers: {upward}"


def test_no_import_cycles():
    state: dict[str, int] = {}
    cycles = []

    def visit(m, stack):
        state[m] = 1
        for t in sorted(GRAPH.get(m, ())):
            if t not in MODULES or t == "softprompt":
                continue
            if state.get(t) == 1:
                cycles.append(stack[stack.index(t) :] + [t])
            elif t not in state:
                visit(t, [*stack, t])
        state[m] = 2

    for m in sorted(MODULES):
        if m not in state:
            visit(m, [m])
    assert not cycles, f"import cycles: {cycles[:3]}"


def test_layer_test_can_fail():
    assert layer_of("softprompt.core.model") < layer_of("softprompt.training.loop")
    assert (
        layer_of("softprompt.io.atomic") < layer_of("softprompt.assets") < layer_of("softprompt.core.loading")
    )
    assert layer_of("softprompt.core.compat") == layer_of("softprompt.core.model")
    assert layer_of("softprompt.files.prompts") > layer_of("softprompt.methods")


def test_public_api_names_resolve_and_are_documented():
    assert softprompt.__all__ and len(set(softprompt.__all__)) == len(softprompt.__all__)
    for name in softprompt.__all__:
        obj = getattr(softprompt, name)
        if callable(obj) and not isinstance(obj, type(softprompt)):
            assert (obj.__doc__ or "").strip(), f"softprompt.{name} has no docstring"
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        softprompt.nope


def test_import_softprompt_and_cli_stay_light():
    """``import softprompt`` and the CLI module import neither torch nor transformers (fast --help)."""
    code = "import sys, softprompt, softprompt.cli; print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_file_names_say_where_they_are():
    """No two modules share a file name, except ``commands/NAME.py`` (the command ``softprompt NAME``) and the
    library module it drives (``experiments/demo.py``, ``files/peft.py``, ...): the same role in parallel."""
    from softprompt.commands import COMMANDS

    commands = {c.__name__.rsplit(".", 1)[1] for c in COMMANDS}
    by_name: dict[str, list[str]] = {}
    for m, p in MODULES.items():
        if p.name != "__init__.py":
            by_name.setdefault(p.stem, []).append(m)
    repeated = {
        name: found
        for name, found in by_name.items()
        if len(found) > 1
        and not (
            name in commands and len([m for m in found if not m.startswith("softprompt.commands.")]) == 1
        )
    }
    assert not repeated, f"file names in several packages: {repeated}"
