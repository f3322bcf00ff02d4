"""Reading a third-party module's source, for the tests that check what an
upstream adaptation (bridge_project/autobahn_*.py, daphne_*.py) relies on."""

from __future__ import annotations

import ast
import inspect
from types import ModuleType


def source_tree(module: ModuleType) -> ast.Module:
    return ast.parse(inspect.getsource(module))


def parents(tree: ast.AST) -> dict[ast.AST, ast.AST]:
    """Each node of `tree` -> the node that contains it."""
    return {
        child: parent
        for parent in ast.walk(tree)
        for child in ast.iter_child_nodes(parent)
    }
