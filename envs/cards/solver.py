"""Exact 24-point solver: every formula that makes a target from a hand of numbers.

A formula uses each number exactly once with the binary operators ``+ - * /`` and
parentheses, as the point games' action sets allow. Values are exact
(:class:`fractions.Fraction`), so ``8 / (3 - 8 / 3)`` is found for 3, 3, 8, 8.

The search repeatedly picks two sub-formulas and joins them with an operator, which
visits every expression tree. Formulas are written with the fewest parentheses that
keep their value (``a + (b - c)`` is written ``a + b - c``), so each is a token
sequence the games accept as it is.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterator, Sequence
from fractions import Fraction
from typing import NamedTuple

Formula = tuple[str, ...]
"""A formula as tokens: ``("8", "/", "(", "3", "-", "8", "/", "3", ")")``."""

ALL_OPERATORS = "+-*/"


class _Expression(NamedTuple):
    """A sub-formula: its value as an unreduced fraction and how to write it."""

    numerator: int
    denominator: int
    """Never 0; its sign is not normalised (only equality with the target is asked)."""
    kind: str
    """``"atom"`` (a number), ``"sum"`` (top operator + or -) or ``"product"`` (top
    operator * or /): decides where parentheses are needed."""
    tree: str | tuple[str, _Expression, _Expression]
    """The number, or (operator, left, right); written out only for solutions."""


def solutions(
    numbers: Sequence[int], target: int = 24, operators: str = ALL_OPERATORS
) -> list[Formula]:
    """Every distinct formula using each of ``numbers`` once that equals ``target``.

    Distinct means a different token sequence, so ``3 * 8`` and ``8 * 3`` are both
    listed. Sorted shortest first, then alphabetically. Empty when there is none.
    """
    _check_operators(operators)
    return list(_solutions(tuple(sorted(numbers)), Fraction(target), operators))


@functools.lru_cache(maxsize=4096)
def _solutions(numbers: tuple[int, ...], target: Fraction, operators: str) -> tuple[Formula, ...]:
    # Integer pairs instead of Fraction objects: the search builds ~10^4 expressions
    # for four numbers, and only equality with the target is needed at the end.
    leaves = [_Expression(n, 1, "atom", str(n)) for n in numbers]
    found = {
        _tokens(e)
        for e in _all_expressions(leaves, operators)
        if e.numerator * target.denominator == target.numerator * e.denominator
    }
    return tuple(sorted(found, key=lambda tokens: (len(tokens), tokens)))


def is_solvable(numbers: Sequence[int], target: int = 24, operators: str = ALL_OPERATORS) -> bool:
    """Whether some formula using each of ``numbers`` once equals ``target``."""
    _check_operators(operators)
    return _is_solvable(tuple(sorted(numbers)), Fraction(target), operators)


def _is_solvable(numbers: tuple[int, ...], target: Fraction, operators: str) -> bool:
    return _reaches(tuple(Fraction(n) for n in numbers), target, operators)


@functools.lru_cache(maxsize=1 << 16)
def _reaches(values: tuple[Fraction, ...], target: Fraction, operators: str) -> bool:
    """Whether sorted ``values`` combine to ``target``.

    Values only and unordered pairs (both orders of - and / are tried explicitly),
    memoised on the sorted values because hands share sub-hands: this is the hot
    path when dealing only solvable hands.
    """
    if len(values) == 1:
        return values[0] == target
    for i, j in itertools.combinations(range(len(values)), 2):
        rest = values[:i] + values[i + 1 : j] + values[j + 1 :]
        for value in set(_join_values(values[i], values[j], operators)):
            if _reaches(tuple(sorted(rest + (value,))), target, operators):
                return True
    return False


def _join_values(a: Fraction, b: Fraction, operators: str) -> Iterator[Fraction]:
    if "+" in operators:
        yield a + b
    if "*" in operators:
        yield a * b
    if "-" in operators:
        yield a - b
        yield b - a
    if "/" in operators:
        if b != 0:
            yield a / b
        if a != 0:
            yield b / a


def _all_expressions(items: list[_Expression], operators: str) -> Iterator[_Expression]:
    if len(items) == 1:
        yield items[0]
        return
    for i, j in itertools.permutations(range(len(items)), 2):
        rest = [e for k, e in enumerate(items) if k not in (i, j)]
        for joined in _join(items[i], items[j], operators):
            yield from _all_expressions(rest + [joined], operators)


def _join(left: _Expression, right: _Expression, operators: str) -> Iterator[_Expression]:
    a, b, c, d = left.numerator, left.denominator, right.numerator, right.denominator
    for operator in operators:
        if operator == "+":
            yield _Expression(a * d + c * b, b * d, "sum", ("+", left, right))
        elif operator == "-":
            yield _Expression(a * d - c * b, b * d, "sum", ("-", left, right))
        elif operator == "*":
            yield _Expression(a * c, b * d, "product", ("*", left, right))
        elif c != 0:
            yield _Expression(a * d, b * c, "product", ("/", left, right))


# Which kinds of operand need parentheses, by operator and side: the fewest that keep
# the value, since + - * / associate to the left (a + (b - c) is a + b - c).
_PARENTHESISE_LEFT = {"+": (), "-": (), "*": ("sum",), "/": ("sum",)}
_PARENTHESISE_RIGHT = {"+": (), "-": ("sum",), "*": ("sum",), "/": ("sum", "product")}


def _tokens(expression: _Expression) -> Formula:
    if isinstance(expression.tree, str):
        return (expression.tree,)
    operator, left, right = expression.tree
    return (
        _operand(left, _PARENTHESISE_LEFT[operator])
        + (operator,)
        + _operand(right, _PARENTHESISE_RIGHT[operator])
    )


def _operand(expression: _Expression, needs_parentheses: tuple[str, ...]) -> Formula:
    tokens = _tokens(expression)
    return ("(",) + tokens + (")",) if expression.kind in needs_parentheses else tokens


def _check_operators(operators: str) -> None:
    if not operators or any(op not in ALL_OPERATORS for op in operators):
        raise ValueError(f"operators={operators!r}; use a non-empty subset of {ALL_OPERATORS!r}")
