"""The import contract in pyproject.toml holds: broadcasts > consent > messaging > config, nothing upward."""

import ast
import importlib
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_dependencies_point_one_way_down_the_layers():
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint_imports), "--no-cache", "--no-logo"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-1000:]
    assert "1 kept, 0 broken" in result.stdout


APPS = ("config", "messaging", "consent", "broadcasts")


def _app_modules():
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            yield name, path, path.name == "__init__.py"


def _function_level_imports(tree: ast.AST):
    """Import statements inside a function body (at any depth), with their line numbers."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for inner in ast.walk(node):
                if isinstance(inner, (ast.Import, ast.ImportFrom)):
                    yield inner


def test_no_unexplained_function_level_imports():
    """An import inside a function hides a dependency (often a cycle): allowed only with a `# why:` on its line."""
    unexplained = set()
    for _, path, _ in _app_modules():
        source = path.read_text()
        lines = source.splitlines()
        for node in _function_level_imports(ast.parse(source)):
            if "# why:" not in lines[node.lineno - 1] and "# why:" not in lines[node.end_lineno - 1]:
                unexplained.add(f"{path.relative_to(ROOT)}:{node.lineno}: {lines[node.lineno - 1].strip()}")
    assert not unexplained, "function-level imports without a `# why:` comment:\n" + "\n".join(sorted(unexplained))


def _module_level_imports(name: str, tree: ast.Module, is_package: bool, known: set[str]) -> set[str]:
    """The app modules `name` imports when it is loaded (not under `if TYPE_CHECKING:`, not in functions)."""
    found = set()
    package = name if is_package else name.rpartition(".")[0]

    def visit(statements):
        for node in statements:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, (ast.If, ast.Try)):
                visit(node.body + node.orelse + getattr(node, "finalbody", [])
                      + [s for handler in getattr(node, "handlers", []) for s in handler.body])
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join(anchor + ([node.module] if node.module else []))
                found.add(base)
                found.update(f"{base}.{alias.name}" for alias in node.names)

    visit(tree.body)
    return {module for module in found if module in known and module != name}


def test_app_modules_import_each_other_without_cycles():
    """Module-level imports between app modules form no cycle (a cycle is what function-level imports hid)."""
    modules = {name: (path, is_package) for name, path, is_package in _app_modules()}
    graph = {name: _module_level_imports(name, ast.parse(path.read_text()), is_package, set(modules))
             for name, (path, is_package) in modules.items()}
    cycles, stack, state = [], [], {}

    def walk(node):
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                cycles.append(stack[stack.index(target):] + [target])
            elif target not in state:
                walk(target)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            walk(node)
    # A package's __init__ re-exporting its own submodules is how packages are built, not a cycle.
    cycles = [c for c in cycles if not (len(c) == 3 and (c[0].startswith(c[1] + ".") or c[1].startswith(c[0] + ".")))]
    assert not cycles, "import cycles:\n" + "\n".join(" → ".join(cycle) for cycle in cycles)


# Reaching into a library's internals: frames and tracebacks, Django's model state.
_INTERNALS = {"_state", "_getframe", "tb_frame", "tb_next", "f_back", "f_code", "f_locals"}
# Underscore names that are public by their library's own documentation.
_PUBLIC_UNDERSCORED = {"_meta", "_replace", "_asdict", "_fields", "_make"}


def _external_names(tree: ast.AST) -> set[str]:
    """Names a module binds by importing from outside the project."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {(alias.asname or alias.name).split(".")[0] for alias in node.names
                      if alias.name.split(".")[0] not in APPS}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module.split(".")[0] not in APPS:
            names |= {alias.asname or alias.name for alias in node.names}
    return names


def _private_api_uses(tree: ast.AST):
    external = _external_names(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            if node.attr in _INTERNALS:
                yield node.lineno, f".{node.attr}"
            elif node.attr not in _PUBLIC_UNDERSCORED and not (
                    isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                # A private name of something a library gave us: a module, a class, an exception.
                root = node.value
                while isinstance(root, ast.Attribute):
                    root = root.value
                if isinstance(root, ast.Name) and root.id in external:
                    yield node.lineno, f"{root.id}….{node.attr}"
                elif isinstance(node.value, ast.Name) and node.value.id in ("exc", "error", "err"):
                    yield node.lineno, f"{node.value.id}.{node.attr}"
                elif isinstance(root, ast.Call) and isinstance(root.func, ast.Name) and root.func.id == "super":
                    yield node.lineno, f"super().{node.attr}"


def _private_overrides(module_name: str):
    """Methods of the module's classes that override a private method of a library's class."""
    if module_name.startswith("config.settings"):
        return  # settings modules define no classes, and production's refuses to load without its keys
    module = importlib.import_module(module_name)
    for cls in vars(module).values():
        if not isinstance(cls, type) or cls.__module__ != module_name:
            continue
        for attr, value in vars(cls).items():
            function = getattr(value, "__func__", value)  # classmethod, staticmethod
            if not attr.startswith("_") or attr.startswith("__") or getattr(function, "__module__", None) != module_name:
                continue  # not a private name, or not written here (an enum's machinery)
            for base in cls.__mro__[1:]:
                if attr in vars(base) and base.__module__.split(".")[0] not in APPS:
                    yield f"{cls.__name__}.{attr} overrides {base.__module__}.{base.__name__}.{attr}"
                    break


def test_no_private_api_of_any_dependency_is_used_or_overridden():
    """No frames, no `_state`, no library's private attribute read, no library's private method overridden."""
    found = []
    for name, path, _ in _app_modules():
        for line, what in _private_api_uses(ast.parse(path.read_text())):
            found.append(f"{path.relative_to(ROOT)}:{line}: {what}")
        found += [f"{path.relative_to(ROOT)}: {what}" for what in _private_overrides(name)]
    assert not found, "private API of a dependency:\n" + "\n".join(found)
