"""The op registry: a small fixed set of primitives.

Every elementwise op is declared once, by its sympy expression over the
argument symbols ``a`` and ``b``. Its partial derivatives are derived with
``sympy.diff`` when the op is registered and kept on the op; its NumPy lowering
is printed from the same expression. Structural ops (placeholders, constants,
reductions, shape changes, matmul) are registered here by name and arity;
their shape rules are in :mod:`lucid.ops.shapes`, their vector-Jacobian
rules and NumPy lowerings in :mod:`lucid.ops.structural`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import sympy as sp
from sympy.printing.numpy import NumPyPrinter
from sympy.printing.precedence import PRECEDENCE

ARGS = sp.symbols("a b", real=True)
FLOATS = ("float32", "float64")
DTYPES = FLOATS + ("int64",)

#: The conventions for what ``sympy.diff`` leaves undefined, one line each.
CONVENTIONS = {
    # relu'(0) = 0 and step'(x) = 0: the subgradient PyTorch and JAX use.
    sp.Heaviside: lambda x, *_: sp.Heaviside(x, 0),
    sp.DiracDelta: lambda *_: sp.Integer(0),
}


def apply_conventions(expr):
    """Replace the undefined points of a derivative by lucid's conventions."""
    for func, rule in CONVENTIONS.items():
        expr = expr.replace(func, rule)
    return expr


class LucidPrinter(NumPyPrinter):
    """NumPy printer that calls ``np.<f>`` and prints steps as comparisons."""

    def __init__(self, scalars=frozenset()):
        super().__init__({"fully_qualified_modules": True, "allow_unknown_functions": False})
        self.scalars = frozenset(scalars)  # symbols known to be Python scalars

    def _module_format(self, fqn, register=True):
        name = super()._module_format(fqn, register)
        return "np." + name[len("numpy."):] if name.startswith("numpy.") else name

    def _print_Float(self, expr):
        return repr(float(expr))

    def _print_Heaviside(self, expr):
        # Heaviside(x, 0) is the only form lucid produces (see CONVENTIONS); a float, not a bool
        return f"np.heaviside({self._print(expr.args[0])}, 0)"

    def _print_Max(self, expr):
        args = [self._print(a) for a in expr.args]
        out = args[0]
        for a in args[1:]:
            out = f"np.maximum({out}, {a})"
        return out

    def _print_Pow(self, expr, rational=False):
        base, exp = expr.args
        if exp == sp.Rational(-1, 2):
            return f"(1/np.sqrt({self._print(base)}))"
        if exp == -1:
            return f"(1/{self.parenthesize(base, 100)})"
        if exp in (2, 3):
            b = self.parenthesize(base, 100)
            return "(" + "*".join([b] * int(exp)) + ")"
        return super()._print_Pow(expr, rational)

    def _print_Mul(self, expr):
        """Python scalars first, then arrays: ``(-0.5*k)*a*b/c`` costs one array op per array."""
        if not self.scalars:
            return super()._print_Mul(expr)
        coeff, rest = expr.as_coeff_Mul()
        num_s, num_a, den_s, den_a = [], [], [], []
        for f in sp.Mul.make_args(rest):
            inverse = f.is_Pow and f.exp.is_negative and f.exp.is_Rational
            term = f.base ** -f.exp if inverse else f
            scalar = term.free_symbols <= self.scalars
            ((den_s if scalar else den_a) if inverse else (num_s if scalar else num_a)).append(term)
        scalar = coeff * sp.Mul(*num_s) / sp.Mul(*den_s)
        if not num_a and not den_a:
            return super()._print_Mul(expr) if expr.is_Mul else self._print(expr)
        parts = [self.parenthesize(a, 50) for a in num_a] or ["1"]
        out = "*".join(parts)
        if scalar != 1:
            out = f"{self._scalar(scalar)}*{out}"
        for d in den_a:
            out = f"{out}/{self.parenthesize(d, 51)}"
        return out

    def _scalar(self, value):
        return "-1" if value == -1 else self.parenthesize(value, PRECEDENCE["Mul"])


PRINTER = LucidPrinter()


def to_numpy_source(expr, scalars=None) -> str:
    """NumPy source for a sympy expression (functions as ``np.exp``, ``np.sqrt``).

    ``scalars``: symbols that hold Python scalars, grouped first in products so
    that array operations are not spent on scalar factors.
    """
    return (LucidPrinter(scalars) if scalars else PRINTER).doprint(expr)


@dataclass(eq=False)
class Op:
    """A primitive. ``arity`` None means any number of inputs."""

    name: str
    arity: int | None
    kind: str  # "elementwise", "structural" or "leaf"
    doc: str = ""


@dataclass(eq=False)
class Elementwise(Op):
    """An elementwise primitive defined by one sympy expression."""

    expr: sp.Expr = None
    partials: tuple = field(default=())
    lowering: str = ""

    def gradient_rule(self):
        """The derived rule: d(out)/d(arg) for each argument, as sympy expressions."""
        return dict(zip(ARGS, self.partials))

    def evaluate(self, *arrays):
        """Apply the op with NumPy (the reference lowering)."""
        env = {str(s): v for s, v in zip(ARGS, arrays)}
        return eval(self._code, _NUMPY_ENV, env)  # compiled from our own expression

    def __post_init__(self):
        args = ARGS[: self.arity]
        self.partials = tuple(apply_conventions(sp.diff(self.expr, s)) for s in args)
        self.lowering = to_numpy_source(self.expr)
        self._code = compile(self.lowering, f"<lucid op {self.name}>", "eval")


_NUMPY_ENV = {"__builtins__": {}, "np": np}

REGISTRY: dict[str, Op] = {}


def register(op: Op) -> Op:
    if op.name in REGISTRY:
        raise ValueError(f"op {op.name!r} is already registered")
    REGISTRY[op.name] = op
    return op


def elementwise(name, arity, expr, doc=""):
    return register(Elementwise(name=name, arity=arity, kind="elementwise", expr=expr, doc=doc))


a, b = ARGS
# -- the elementwise primitives: one line each, the expression is the definition.
elementwise("add", 2, a + b)
elementwise("sub", 2, a - b)
elementwise("mul", 2, a * b)
elementwise("div", 2, a / b)
elementwise("neg", 1, -a)
elementwise("exp", 1, sp.exp(a))
elementwise("log", 1, sp.log(a))
elementwise("sqrt", 1, sp.sqrt(a))
elementwise("rsqrt", 1, 1 / sp.sqrt(a))
elementwise("tanh", 1, sp.tanh(a))
elementwise("relu", 1, sp.Max(a, 0))
elementwise("step", 1, sp.Heaviside(a, 0), doc="1 where a > 0, else 0")

# -- the structural primitives; shapes in lucid.ops.shapes, VJPs in lucid.ops.structural.
for _name, _arity, _kind, _doc in [
    ("placeholder", 0, "leaf", "a program input"),
    ("constant", 0, "leaf", "a scalar constant, attrs value"),
    ("sum", 1, "structural", "sum over attrs axes, attrs keepdims"),
    ("numel", 1, "structural", "number of elements of the input over attrs axes"),
    ("broadcast_to", 1, "structural", "broadcast to attrs shape"),
    ("reshape", 1, "structural", "reshape to attrs shape"),
    ("transpose", 1, "structural", "permute axes by attrs perm"),
    ("matmul", 2, "structural", "matrix product of two 2D arrays"),
    ("cast", 1, "structural", "convert to attrs dtype"),
]:
    register(Op(name=_name, arity=_arity, kind=_kind, doc=_doc))
