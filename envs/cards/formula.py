"""Exact arithmetic on the formulas the point games build, one token at a time.

gym-cards scored a formula with Python's eval in floating point, so a correct
answer could lose (``8/(3-8/3)`` evaluates to 23.999999999999996) and Python-only
syntax leaked into the game. Here a small recursive-descent parser evaluates the
tokens with :class:`fractions.Fraction`, which is exact.

Grammar (the usual precedence; ``+ - * /`` associate to the left)::

    expression := term (("+" | "-") term)*
    term       := unary (("*" | "/") unary)*
    unary      := ("+" | "-") unary | number | "(" expression ")"

Unary ``+``/``-`` are accepted because Python's eval accepted them. What only Python
read into a token sequence is rejected as malformed: ``* *`` (power), ``/ /`` (floor
division), two numbers in a row (``eval`` read ``2 4`` typed as ``"24"``) and a
number directly before ``(`` (``eval`` tried to call it).
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

OPERATORS = ("+", "-", "*", "/")
PARENTHESES = ("(", ")")


class FormulaError(ValueError):
    """A formula that is malformed or divides by zero; the message says where."""


def tokenize(text: str) -> list[str]:
    """Splits ``"8/(3-8/3)"`` into ``["8", "/", "(", "3", "-", "8", "/", "3", ")"]``.

    Spaces are ignored; any character other than digits, ``+ - * / ( )`` raises
    :class:`FormulaError`.
    """
    tokens: list[str] = []
    number = ""
    for position, char in enumerate(text):
        if char.isdigit() and char.isascii():
            number += char
            continue
        if number:
            tokens.append(number)
            number = ""
        if char in OPERATORS or char in PARENTHESES:
            tokens.append(char)
        elif not char.isspace():
            raise FormulaError(
                f"character {char!r} at position {position} is not a digit, "
                "+ - * / or a parenthesis"
            )
    if number:
        tokens.append(number)
    return tokens


def evaluate(tokens: Sequence[str]) -> Fraction:
    """The exact value of a formula given as tokens (numbers as digit strings).

    :raises FormulaError: the formula is empty, malformed or divides by zero.
    """
    parser = _Parser(list(tokens))
    value = parser.expression()
    if parser.position != len(parser.tokens):
        raise FormulaError(
            f"unexpected {parser.tokens[parser.position]!r} at token {parser.position}"
        )
    return value


def numbers_in(tokens: Sequence[str]) -> list[int]:
    """The numbers a formula uses, in order."""
    return [int(token) for token in tokens if token.isdigit()]


class _Parser:
    """Recursive descent over a token list; each method consumes one grammar rule."""

    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens
        self.position = 0

    def _peek(self) -> str | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def expression(self) -> Fraction:
        value = self.term()
        while self._peek() in ("+", "-"):
            operator = self.tokens[self.position]
            self.position += 1
            right = self.term()
            value = value + right if operator == "+" else value - right
        return value

    def term(self) -> Fraction:
        value = self.unary()
        while self._peek() in ("*", "/"):
            operator = self.tokens[self.position]
            self.position += 1
            right = self.unary()
            if operator == "*":
                value *= right
            elif right == 0:
                raise FormulaError(f"division by zero at token {self.position - 1}")
            else:
                value /= right
        return value

    def unary(self) -> Fraction:
        token = self._peek()
        if token is None:
            raise FormulaError("the formula ends where a number or '(' is expected")
        self.position += 1
        if token in ("+", "-"):
            value = self.unary()
            return value if token == "+" else -value
        if token.isdigit():
            return Fraction(int(token))
        if token == "(":
            opened_at = self.position - 1
            value = self.expression()
            if self._peek() != ")":
                found = self._peek()
                where = "the end" if found is None else repr(found)
                raise FormulaError(f"'(' at token {opened_at} is not closed; found {where}")
            self.position += 1
            return value
        raise FormulaError(f"unexpected {token!r} at token {self.position - 1}")
