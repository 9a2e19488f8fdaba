"""The exact formula evaluator and the 24-point solver, against brute force."""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import pytest

from envs.cards import points24
from envs.cards.formula import FormulaError, evaluate, numbers_in, tokenize
from envs.cards.solver import is_solvable, solutions


# -------------------------------------------------------------------- formula
@pytest.mark.parametrize(
    "text, value",
    [("8/(3-8/3)", Fraction(24)), ("1+2*3", 7), ("(1+2)*3", 9), ("8-3-2", 3), ("8/4/2", 1),
     ("2*3/4", Fraction(3, 2)), ("-3+5", 2), ("-(3-5)*2", 4), ("+4", 4), ("2*-3", -6),
     ("((10))", 10), ("13 - 1", 12), ("10 / 4", Fraction(5, 2))],
)
def test_evaluate_is_exact(text, value):
    assert evaluate(tokenize(text)) == value
    assert isinstance(evaluate(tokenize(text)), Fraction)


def test_the_float_trap_is_exact_here():
    assert 8 / (3 - 8 / 3) != 24  # floating point, as gym-cards scored it
    assert evaluate(["8", "/", "(", "3", "-", "8", "/", "3", ")"]) == 24


@pytest.mark.parametrize(
    "tokens, message",
    [([], "ends"), (["3", "+"], "ends"), (["(", "3"], r"'\(' at token 0 is not closed"),
     (["3", ")"], r"unexpected '\)' at token 1"), (["3", "4"], "unexpected '4' at token 1"),
     (["2", "*", "*", "3"], r"unexpected '\*' at token 2"),
     (["4", "/", "/", "2"], "unexpected '/'"),
     (["2", "(", "3", ")"], r"unexpected '\('"), (["1", "/", "0"], "division by zero"),
     (["1", "/", "(", "2", "-", "2", ")"], "division by zero"), (["x"], "unexpected 'x'"),
     (["_"], "unexpected '_'")],
)
def test_malformed_formulas_say_where(tokens, message):
    with pytest.raises(FormulaError, match=message):
        evaluate(tokens)


def test_tokenize_and_numbers():
    assert tokenize(" 10*(3 - 1) ") == ["10", "*", "(", "3", "-", "1", ")"]
    assert numbers_in(["10", "*", "(", "3", "-", "1", ")"]) == [10, 3, 1]
    with pytest.raises(FormulaError, match="'x' at position 1"):
        tokenize("3x")
    assert issubclass(FormulaError, ValueError)


# --------------------------------------------------------------------- solver
def _trees(numbers):
    """Every expression tree over ``numbers`` (each used once): (value, tree) pairs,
    written independently of the solver: all orders, all operator choices, all shapes."""
    if len(numbers) == 1:
        yield Fraction(numbers[0]), str(numbers[0])
        return
    for size in range(1, len(numbers)):
        for left_idx in itertools.combinations(range(len(numbers)), size):
            left = [numbers[i] for i in left_idx]
            right = [numbers[i] for i in range(len(numbers)) if i not in left_idx]
            for (a, ta), (b, tb) in itertools.product(list(_trees(left)), list(_trees(right))):
                yield a + b, ("+", ta, tb)
                yield a - b, ("-", ta, tb)
                yield a * b, ("*", ta, tb)
                if b != 0:
                    yield a / b, ("/", ta, tb)


def _write(tree):
    """Fewest parentheses, by textbook precedence: returns (text, top operator)."""
    if isinstance(tree, str):
        return tree, None
    op, left, right = tree
    lt, lop = _write(left)
    rt, rop = _write(right)
    if op in "*/" and lop in ("+", "-"):
        lt = f"( {lt} )"
    if (op == "-" and rop in ("+", "-")) or (op == "*" and rop in ("+", "-")) or (
        op == "/" and rop is not None
    ):
        rt = f"( {rt} )"
    return f"{lt} {op} {rt}", op


def brute_force(numbers, target=24):
    return {_write(tree)[0] for value, tree in _trees(list(numbers)) if value == target}


KNOWN = [((3, 3, 8, 8), True), ((1, 5, 5, 5), True), ((1, 1, 1, 1), False), ((4, 7, 9, 10), True),
         ((1, 1, 1, 11), True), ((1, 6, 11, 13), True), ((3, 3, 7, 7), True), ((7, 7, 7, 7), False),
         ((1, 1, 2, 3), False)]


@pytest.mark.parametrize("numbers, solvable", KNOWN)
def test_known_hands(numbers, solvable):
    assert is_solvable(numbers) == solvable == bool(solutions(numbers))
    assert bool(brute_force(numbers)) == solvable


def test_solutions_of_3_3_8_8():
    assert solutions([8, 3, 8, 3]) == [("8", "/", "(", "3", "-", "8", "/", "3", ")")]


def test_solver_finds_exactly_the_brute_force_solutions_on_random_deals():
    rng = np.random.default_rng(0)
    solvable_seen = unsolvable_seen = 0
    for _ in range(25):
        numbers = [int(n) for n in rng.integers(1, 14, 4)]
        expected = brute_force(numbers)
        found = solutions(numbers)
        assert {" ".join(tokens) for tokens in found} == expected, numbers
        assert is_solvable(numbers) == bool(expected)
        for tokens in found:  # each one a legal formula using every card once
            assert evaluate(tokens) == 24
            assert sorted(numbers_in(tokens)) == sorted(numbers)
        solvable_seen += bool(expected)
        unsolvable_seen += not expected
    assert solvable_seen and unsolvable_seen


def test_is_solvable_matches_brute_force_on_many_deals_and_targets():
    rng = np.random.default_rng(1)
    for _ in range(60):
        numbers = [int(n) for n in rng.integers(1, 11, int(rng.integers(1, 5)))]
        values = {value for value, _ in _trees(numbers)}
        for target in (1, 5, 12, 24, 36, 97):
            assert is_solvable(numbers, target) == (target in values), (numbers, target)


def test_restricted_operators_for_ezpoints():
    assert solutions([4, 3], 12, "+*") == [("3", "*", "4"), ("4", "*", "3")]
    assert solutions([6, 6], 12, "+*") == [("6", "+", "6")]
    assert not is_solvable([13, 1], 12, "+*") and is_solvable([13, 1], 12, "-")
    with pytest.raises(ValueError, match="operators"):
        solutions([1, 2], 3, "+^")


def test_solvable_fraction_of_uniform_deals_is_the_documented_one():
    tens = points24.solvable_fraction(treat_face_cards_as_10=True)
    full = points24.solvable_fraction(treat_face_cards_as_10=False)
    assert tens == Fraction(20876, 28561) and full == Fraction(22615, 28561)
    doc = points24.Points24Env.__doc__
    assert "20876/28561 = 73.1%" in doc and "22615/28561 = 79.2%" in doc
    assert f"{float(tens):.1%}" == "73.1%" and f"{float(full):.1%}" == "79.2%"
