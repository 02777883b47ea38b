"""The import contract in pyproject.toml holds: broadcasts > consent > messaging > config, nothing upward."""

import ast
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
