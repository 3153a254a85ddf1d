"""The folders a script adds to its own import path, read without running it.

Lab scripts often reach their shared code with a line above their imports (or with
``site.addsitedir``)::

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
    sys.path.append(str(Path(__file__).resolve().parent / "models"))
    HERE = os.path.dirname(os.path.abspath(__file__)); sys.path.append(HERE + "/../lib")

``brian2-autotune run`` and ``apply()`` (called at the top, before that line) read the script
before it runs, so Python's own lookup does not see those folders yet; without them, a
``run()`` in the shared code goes unseen (:mod:`autotune.scriptcheck`). This evaluates the
usual spellings: string literals, ``__file__``, ``os.path``'s ``dirname``, ``join``,
``abspath``, ``realpath``, ``normpath`` and ``expanduser``, ``os.getcwd()``, ``os.pardir``,
``pathlib.Path`` with ``/``, ``.parent``, ``.parents[n]``, ``.resolve()`` and ``.absolute()``,
``str()``, ``+`` of strings, f-strings, and names bound once to such an expression. Anything
else (a path read from the environment or a file) is left out: the analysis then errs as
before, on runtime's side.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

#: ``os.path`` functions of one path argument, by name.
_ONE_PATH_FUNCTIONS: dict[str, Callable[[str], str]] = {
    "dirname": os.path.dirname, "abspath": os.path.abspath, "realpath": os.path.realpath,
    "normpath": os.path.normpath, "expanduser": os.path.expanduser,
}
_OS_NAMES = {"pardir": os.pardir, "curdir": os.curdir, "sep": os.sep}
_PATH_METHODS = {"resolve", "absolute", "expanduser"}
_PATH_CLASSES = {"Path", "PosixPath", "PurePath", "PurePosixPath"}


def added_import_folders(nodes: Iterable[ast.AST], file: Path) -> list[Path]:
    """The folders that ``sys.path.insert(i, X)``, ``sys.path.append(X)``,
    ``sys.path.extend([X, ...])`` and ``site.addsitedir(X)`` among ``nodes`` (``ast.walk`` of
    ``file``'s text) add, where ``X`` can be evaluated without running anything; a relative
    one is taken from the current folder, as Python's import does."""
    added: list[ast.expr] = []
    assignments: dict[str, list[ast.expr]] = {}
    for node in nodes:
        added.extend(_added_expressions(node))
        _note_assignment(node, assignments)
    if not added:
        return []
    names = _bound_names(assignments, file)
    here = current_folder()
    folders: list[Path] = []
    for expression in added:
        value = _evaluate(expression, file, names)
        if isinstance(value, str) and value:
            folder = Path(value)
            if folder.is_absolute():
                folders.append(folder)
            elif here is not None:
                folders.append(here / folder)
    return folders


def current_folder() -> Path | None:
    """The process's current folder; None where it was removed while the process ran in it
    (Python itself runs on there, and so must the script's analysis)."""
    try:
        return Path.cwd()
    except OSError:
        return None


def _added_expressions(node: ast.AST) -> Iterator[ast.expr]:
    """What a ``sys.path`` call (or ``site.addsitedir``) adds, where ``node`` is one."""
    if not isinstance(node, ast.Call):
        return
    if _called_name(node.func) == "addsitedir" and len(node.args) == 1:
        yield node.args[0]
        return
    if not (isinstance(node.func, ast.Attribute) and _is_sys_path(node.func.value)):
        return
    method, args = node.func.attr, node.args
    if method == "insert" and len(args) == 2:
        yield args[1]
    elif method == "append" and len(args) == 1:
        yield args[0]
    elif method == "extend" and len(args) == 1 and isinstance(args[0], (ast.List, ast.Tuple)):
        yield from args[0].elts


def _is_sys_path(node: ast.expr) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == "path"
            and isinstance(node.value, ast.Name) and node.value.id == "sys")


def _note_assignment(node: ast.AST, assignments: dict[str, list[ast.expr]]) -> None:
    if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0],
                                                                              ast.Name):
        assignments.setdefault(node.targets[0].id, []).append(node.value)
    elif isinstance(node, (ast.AugAssign, ast.AnnAssign)) and isinstance(node.target, ast.Name):
        assignments.setdefault(node.target.id, []).append(ast.Constant(None))


def _bound_names(assignments: dict[str, list[ast.expr]], file: Path) -> dict[str, str | Path]:
    """Of the ``assignments`` found, the names assigned exactly once to a path that can be
    evaluated (``HERE = os.path.dirname(__file__)``), in the order they are written."""
    once = {name: values[0] for name, values in assignments.items() if len(values) == 1}
    names: dict[str, str | Path] = {}
    for name, expression in sorted(once.items(), key=lambda item: getattr(item[1], "lineno", 0)):
        value = _evaluate(expression, file, names)
        if value is not None:
            names[name] = value
    return names


def _evaluate(node: ast.expr, file: Path, names: dict[str, str | Path]) -> str | Path | None:
    """``node``'s value as a path (a ``str`` or a ``Path``) where it is one of the spellings
    this module knows; None otherwise."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name):
        return str(file) if node.id == "__file__" else names.get(node.id)
    if isinstance(node, ast.BinOp):
        return _binary(node, file, names)
    if isinstance(node, ast.JoinedStr):
        return _formatted(node, file, names)
    if isinstance(node, ast.Attribute):
        if isinstance(node.value, ast.Name) and node.value.id == "os" and node.attr in _OS_NAMES:
            return _OS_NAMES[node.attr]
        base = _evaluate(node.value, file, names)
        return base.parent if isinstance(base, Path) and node.attr == "parent" else None
    if isinstance(node, ast.Subscript):
        return _parents_item(node, file, names)
    if isinstance(node, ast.Call):
        try:
            return _call(node, file, names)
        except (OSError, ValueError):  # realpath of a text with a NUL in it, and the like
            return None
    return None


def _binary(node: ast.BinOp, file: Path, names: dict[str, str | Path]) -> str | Path | None:
    left, right = _evaluate(node.left, file, names), _evaluate(node.right, file, names)
    if left is None or right is None:
        return None
    if isinstance(node.op, ast.Div) and isinstance(left, Path):
        return left / right
    if isinstance(node.op, ast.Add) and isinstance(left, str) and isinstance(right, str):
        return left + right
    return None


def _formatted(node: ast.JoinedStr, file: Path, names: dict[str, str | Path]) -> str | None:
    """``f"{HERE}/lib"``."""
    parts = []
    for value in node.values:
        if isinstance(value, ast.FormattedValue):
            if value.format_spec is not None or value.conversion not in (-1, ord("s")):
                return None
            value = value.value
        part = _evaluate(value, file, names)
        if part is None:
            return None
        parts.append(str(part))
    return "".join(parts)


def _parents_item(node: ast.Subscript, file: Path, names: dict[str, str | Path]) -> Path | None:
    """``p.parents[n]``."""
    if not (isinstance(node.value, ast.Attribute) and node.value.attr == "parents"
            and isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, int)):
        return None
    base = _evaluate(node.value.value, file, names)
    if not isinstance(base, Path) or not 0 <= node.slice.value < len(base.parents):
        return None
    return base.parents[node.slice.value]


def _call(node: ast.Call, file: Path, names: dict[str, str | Path]) -> str | Path | None:
    name = _called_name(node.func)
    args = [_evaluate(arg, file, names) for arg in node.args]
    if node.keywords or any(arg is None for arg in args):
        return None
    if name == "getcwd" and not args:
        return os.getcwd()
    if name in _ONE_PATH_FUNCTIONS and len(args) == 1:
        return _ONE_PATH_FUNCTIONS[name](str(args[0]))
    if name == "join" and args and _is_os_path_join(node.func):
        return os.path.join(*(str(arg) for arg in args))
    if name in _PATH_CLASSES:
        return Path(*(str(arg) for arg in args)) if args else Path()
    if name in ("str", "fspath") and len(args) == 1:
        return str(args[0])
    if name in _PATH_METHODS and not args and isinstance(node.func, ast.Attribute):
        base = _evaluate(node.func.value, file, names)
        if isinstance(base, Path):
            return getattr(base, name)()  # type: ignore[no-any-return]
    return None


def _called_name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    return func.attr if isinstance(func, ast.Attribute) else None


def _is_os_path_join(func: ast.expr) -> bool:
    """``os.path.join``, ``path.join`` or a bare ``join`` (``from os.path import join``), not
    ``"sep".join``."""
    if isinstance(func, ast.Name):
        return True
    if not isinstance(func, ast.Attribute):
        return False
    owner = func.value
    return (isinstance(owner, ast.Name) and owner.id in ("path", "osp", "op")
            or isinstance(owner, ast.Attribute) and owner.attr == "path")
