"""Find the external tools the Python code runs or looks for, by reading its syntax tree.

A tool is "in command position" when it is the first argument of a call that runs or finds a
program (subprocess.run/Popen/check_output, shutil.which, the lab's run/sh/require_tools, ...),
the first element of a list literal that is such an argument or is assigned to `cmd`/`argv`,
an element of a `*_TOOLS` list, or an element of a `for tool in (...)` loop. A module-level
string constant used there (CLANG = "clang") counts as its value."""
from __future__ import annotations

import ast
import re
from pathlib import Path

RUNNERS = {"run", "Popen", "check_output", "check_call", "call", "which", "sh", "run_ok", "_run",
           "execv", "execvp", "require_tools", "getoutput"}
ARGV_NAMES = {"cmd", "argv", "command"}
LOOP_NAMES = {"tool", "t"}
# A program name or an absolute path; shell lines (with spaces, run inside VMs) and playbook
# file names are not tools of this machine.
TOOL_RE = re.compile(r"^(/[\w/.+-]+|[a-z][\w.+-]*)$")
NOT_A_TOOL_RE = re.compile(r"\.(ya?ml|py|toml|json)$")


def _module_constants(tree: ast.Module) -> dict[str, str]:
    out = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) \
                and isinstance(node.value.value, str):
            out.update({t.id: node.value.value for t in node.targets if isinstance(t, ast.Name)})
    return out


def _string(node: ast.AST, constants: dict[str, str]) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name):
        return constants.get(node.id)
    return None


def _first(node: ast.AST, constants: dict[str, str]) -> str | None:
    if isinstance(node, (ast.List, ast.Tuple)):
        return _string(node.elts[0], constants) if node.elts else None
    return _string(node, constants)


def _call_name(func: ast.AST) -> str | None:
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)


def _names(targets: list[ast.AST]) -> set[str]:
    return {t.id for t in targets if isinstance(t, ast.Name)}


def _in_command_position(node: ast.AST, constants: dict[str, str]) -> list[str | None]:
    if isinstance(node, ast.Call) and _call_name(node.func) in RUNNERS and node.args:
        return [_first(node.args[0], constants)]
    if isinstance(node, ast.Assign) and isinstance(node.value, (ast.List, ast.Tuple)):
        names = _names(node.targets)
        if names & ARGV_NAMES:
            return [_first(node.value, constants)]
        if any(n.endswith("TOOLS") for n in names):
            return [_string(e, constants) for e in node.value.elts]
    if isinstance(node, ast.For) and isinstance(node.target, ast.Name) \
            and node.target.id in LOOP_NAMES and isinstance(node.iter, (ast.List, ast.Tuple)):
        return [_string(e, constants) for e in node.iter.elts]
    return []


def tools_in(path: Path) -> dict[str, list[int]]:
    """{tool: [line, ...]} for one Python file."""
    tree = ast.parse(path.read_text(), str(path))
    constants = _module_constants(tree)
    found: dict[str, list[int]] = {}
    for node in ast.walk(tree):
        for value in _in_command_position(node, constants):
            if value and TOOL_RE.match(value) and not NOT_A_TOOL_RE.search(value):
                found.setdefault(value, []).append(node.lineno)
    return found


def scan(root: Path, folders: tuple[str, ...]) -> dict[str, list[str]]:
    """{tool: ["file:line", ...]} over every .py file under the folders."""
    found: dict[str, list[str]] = {}
    for folder in folders:
        for path in sorted((root / folder).rglob("*.py")):
            for tool, lines in tools_in(path).items():
                found.setdefault(tool, []).extend(f"{path.relative_to(root)}:{n}" for n in lines)
    return found
