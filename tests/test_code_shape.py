"""No function of ``src/netadapt`` is over 80 lines (issue 17): long ones are split into named parts.

Each module is read with :mod:`ast`; a function's length runs from its ``def`` line to its last
line (docstring and comments included), and nested functions and methods count on their own as
well as inside the function that holds them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import netadapt

SRC = Path(netadapt.__file__).parent
MAX_LINES = 80


def _long_functions(max_lines: int = MAX_LINES) -> list[str]:
    found = []
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > max_lines:
                    found.append(f"{path.relative_to(SRC.parent)}:{node.lineno} {node.name} ({lines} lines)")
    return found


def test_no_function_is_over_80_lines() -> None:
    assert _long_functions() == []


def test_the_check_sees_long_functions() -> None:
    # The walk finds functions at all: with a limit of 10 lines some are over it.
    assert _long_functions(10)
