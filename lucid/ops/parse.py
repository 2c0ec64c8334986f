"""Reading an elementwise op's definition from a string, without running any Python.

A small recursive-descent parser over ``a``, ``b``, numbers, ``+ - * / **``,
parentheses and a few functions builds the sympy expression itself: no
``eval``, so a definition cannot run code; numbers are exact rationals
(``0.5`` is ``1/2``), so derivatives keep exact exponents; lengths, depths
and numeric exponents are bounded, so a definition cannot hang the process.
Every problem is a ValueError naming it.

>>> parse("a / (1 + abs(a))")
a/(Abs(a) + 1)
"""
from __future__ import annotations

import re

import sympy as sp

from .op import ARGS

#: What a definition may call: these functions, by name.
FUNCTIONS = {"exp": sp.exp, "log": sp.log, "sqrt": sp.sqrt, "tanh": sp.tanh, "sin": sp.sin,
             "cos": sp.cos, "abs": sp.Abs, "Abs": sp.Abs, "sign": sp.sign, "max": sp.Max,
             "Max": sp.Max, "min": sp.Min, "Min": sp.Min, "Heaviside": sp.Heaviside}
#: How many arguments each takes (at least, at most).
ARITY = {"max": (2, 8), "Max": (2, 8), "min": (2, 8), "Min": (2, 8), "Heaviside": (1, 2)}
MAX_LENGTH, MAX_DEPTH, MAX_EXPONENT = 1000, 60, 64
_TOKEN = re.compile(r"\s*(?:(?P<num>\d+\.?\d*(?:[eE][-+]?\d{1,3})?|\.\d+(?:[eE][-+]?\d{1,3})?)"
                    r"|(?P<name>[A-Za-z]\w*)|(?P<op>\*\*|[-+*/(),]))")


def parse(text):
    """The sympy expression a definition string stands for (see the module docstring)."""
    if not isinstance(text, str):
        raise TypeError(f"a definition must be a string, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise ValueError(f"a definition is at most {MAX_LENGTH} characters, got {len(text)}")
    return _Parser(text).parse()


class _Parser:
    def __init__(self, text):
        self.text, self.tokens, pos = text, [], 0
        while pos < len(text.rstrip()):
            m = _TOKEN.match(text, pos)
            if m is None:
                raise ValueError(f"cannot read {text!r} at {text[pos:pos + 10]!r}: an "
                                 "elementwise op is an expression in a, b, numbers, "
                                 f"+ - * / ** and {', '.join(sorted(FUNCTIONS))}")
            kind = m.lastgroup
            self.tokens.append((kind, m.group(kind)))
            pos = m.end()
        self.i, self.depth = 0, 0

    # -- tokens --------------------------------------------------------------------------
    def peek(self):
        return self.tokens[self.i] if self.i < len(self.tokens) else ("end", "")

    def take(self, value=None):
        kind, token = self.peek()
        if value is not None and token != value:
            raise ValueError(f"in {self.text!r}: expected {value!r}, found {token or 'the end'!r}")
        self.i += 1
        return kind, token

    def parse(self):
        expr = self.sum()
        if self.peek()[0] != "end":
            raise ValueError(f"in {self.text!r}: unexpected {self.peek()[1]!r}")
        return expr

    # -- grammar: sum > product > unary > power > atom -----------------------------------
    def sum(self):
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ValueError(f"{self.text!r} nests deeper than {MAX_DEPTH} levels")
        out = self.product()
        while self.peek()[1] in ("+", "-"):
            sign = self.take()[1]
            term = self.product()
            out = out + term if sign == "+" else out - term
        self.depth -= 1
        return out

    def product(self):
        out = self.unary()
        while self.peek()[1] in ("*", "/"):
            op = self.take()[1]
            factor = self.unary()
            if op == "/" and factor == 0:
                raise ValueError(f"in {self.text!r}: division by zero")
            out = out * factor if op == "*" else out / factor
        return out

    def unary(self):
        if self.peek()[1] in ("-", "+"):
            sign = self.take()[1]
            value = self.unary()
            return -value if sign == "-" else value
        return self.power()

    def power(self):
        base = self.atom()
        if self.peek()[1] != "**":
            return base
        self.take()
        exponent = self.unary()  # right-associative, and a**-1 reads as in Python
        if exponent.is_Number and abs(exponent) > MAX_EXPONENT:
            raise ValueError(f"in {self.text!r}: exponent {exponent} is larger than "
                             f"{MAX_EXPONENT} in size")
        if exponent.free_symbols and base.is_Number:
            raise ValueError(f"in {self.text!r}: a number to the power of an argument "
                             "is not supported (write exp(a*log(c)))")
        return base ** exponent

    def atom(self):
        kind, token = self.take()
        if kind == "num":
            return sp.Rational(token)
        if token == "(":
            inner = self.sum()
            self.take(")")
            return inner
        if kind == "name" and token in ("a", "b"):
            return ARGS[0] if token == "a" else ARGS[1]
        if kind == "name" and token in FUNCTIONS:
            return self.call(token)
        if kind == "name":
            raise ValueError(f"unknown name {token!r} in {self.text!r}: an elementwise op may "
                             f"use a, b and {', '.join(sorted(FUNCTIONS))}")
        raise ValueError(f"in {self.text!r}: unexpected {token or 'end'!r}")

    def call(self, name):
        self.take("(")
        args = [self.sum()]
        while self.peek()[1] == ",":
            self.take()
            args.append(self.sum())
        self.take(")")
        low, high = ARITY.get(name, (1, 1))
        if not low <= len(args) <= high:
            raise ValueError(f"in {self.text!r}: {name} takes {low if low == high else f'{low} to {high}'} "
                             f"argument(s), got {len(args)}")
        return FUNCTIONS[name](*args)
