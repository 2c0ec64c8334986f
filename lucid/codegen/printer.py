"""The NumPy source printer: sympy expressions as NumPy calls.

Function heads print as the NumPy functions the op records name
(:data:`lucid.ops.NUMPY_FUNCTIONS`); powers that NumPy computes faster another
way (``x**-0.5``, ``x**2``) are spelled that way; products group Python
scalars first, so array operations are not spent on scalar factors, and
print a step taken of an array last as a comparison (``g*(x > 0)``).
"""
from __future__ import annotations

import sympy as sp
from sympy.printing.numpy import NumPyPrinter
from sympy.printing.precedence import PRECEDENCE

from ..ops import NUMPY_FUNCTIONS
from ..ops.nonfinite import token
from ..ops.reference import HELPERS


class LucidPrinter(NumPyPrinter):
    """NumPy printer that calls ``np.<f>`` and prints steps as comparisons."""

    def __init__(self, scalars=frozenset()):
        super().__init__({"fully_qualified_modules": True, "allow_unknown_functions": False})
        self.scalars = frozenset(scalars)  # symbols known to be Python scalars
        # the ops' table, not sympy's defaults, says which NumPy function computes a head
        # (or which of lucid's helpers, by the name the program namespace binds)
        self.known_functions = dict(self.known_functions, **{
            f.__name__: name if name in HELPERS else f"numpy.{name}"
            for f, name in NUMPY_FUNCTIONS.items() if f not in (sp.Max, sp.Min, sp.Heaviside)})

    def _module_format(self, fqn, register=True):
        name = super()._module_format(fqn, register)
        return "np." + name[len("numpy."):] if name.startswith("numpy.") else name

    def _print_ComplexInfinity(self, expr):
        raise ValueError("cannot compile: a value divides by a constant zero (x / 0.0, "
                         "1/(0*x), or a mean over an axis of size 0), whose sign the algebra "
                         "does not keep")

    def _print_Float(self, expr):
        return repr(float(expr))

    def _print_Symbol(self, expr):
        # inf and nan (lucid.ops.nonfinite) print as fixed tokens, never as a value's repr
        return token(expr) or super()._print_Symbol(expr)

    def _print_Dummy(self, expr):  # the symbols of inf and nan are Dummies
        return token(expr) or super()._print_Dummy(expr)

    def _print_Heaviside(self, expr):
        # the value at 0 is the second argument (lucid's own rules use 0), sympy's default 1/2
        at0 = expr.args[1] if len(expr.args) > 1 else sp.Rational(1, 2)
        return f"_step({self._print(expr.args[0])}, {self._print(at0)})"

    def _mask(self, step):
        """``Heaviside(x, 0)`` as ``~(x <= 0)``, ``Heaviside(x, 1)`` as ``~(x < 0)``: 1 at NaN,
        as torch's ReLU backward (``x <= 0 ? 0 : g``) passes the gradient there."""
        compare = "<=" if step.args[1] == 0 else "<"
        return f"(~({self._print(step.args[0])} {compare} 0))"

    def _print_Max(self, expr):
        return self._fold("maximum", expr)

    def _print_Min(self, expr):
        return self._fold("minimum", expr)

    def _fold(self, name, expr):
        args = [self._print(a) for a in expr.args]
        out = args[0]
        for a in args[1:]:
            out = f"np.{name}({out}, {a})"
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
        """Python scalars first, then arrays: ``(-0.5*k)*a*b/c`` costs one array op per array.

        A step of an array (a ReLU mask) multiplies last, as a comparison:
        ``g*(x > 0)`` is a boolean pass about twenty times cheaper than
        ``np.heaviside``, and multiplying a float array by a boolean one keeps
        the float's dtype. (Alone, or against scalars only, a boolean would
        turn into int64 or float64, so there it stays the ``_step`` helper, ``special.step``.)
        """
        masks = [f for f in sp.Mul.make_args(expr) if is_mask(f)]
        if not self.scalars and not masks:
            return super()._print_Mul(expr)
        coeff, rest = expr.as_coeff_Mul()
        num_s, num_a, den_s, den_a = [], [], [], []
        for f in sp.Mul.make_args(rest):
            if f in masks:
                continue
            inverse = f.is_Pow and f.exp.is_negative and f.exp.is_Rational
            term = f.base ** -f.exp if inverse else f
            scalar = term.free_symbols <= self.scalars
            ((den_s if scalar else den_a) if inverse else (num_s if scalar else num_a)).append(term)
        if not num_a:  # nothing to carry the float dtype: the masks stay _step calls
            num_a, masks = masks, []
        scalar = coeff * sp.Mul(*num_s) / sp.Mul(*den_s)
        if not num_a and not den_a:
            return super()._print_Mul(expr) if expr.is_Mul else self._print(expr)
        parts = [self.parenthesize(a, 50) for a in num_a] or ["1"]
        parts += [self._mask(m) for m in masks]
        out = "*".join(parts)
        if scalar != 1:
            out = f"{self._scalar(scalar)}*{out}"
        for d in den_a:
            out = f"{out}/{self.parenthesize(d, 51)}"
        return out

    def _scalar(self, value):
        return "-1" if value == -1 else self.parenthesize(value, PRECEDENCE["Mul"])


def is_mask(f):
    """A step whose value at 0 is 0 or 1: a comparison gives it exactly."""
    return f.func is sp.Heaviside and len(f.args) == 2 and f.args[1] in (0, 1)


PRINTER = LucidPrinter()


def to_numpy_source(expr, scalars=None) -> str:
    """NumPy source for a sympy expression (functions as ``np.exp``, ``np.sqrt``).

    ``scalars``: symbols that hold Python scalars, grouped first in products so
    that array operations are not spent on scalar factors.
    """
    return (LucidPrinter(scalars) if scalars else PRINTER).doprint(expr)


def mask_source(step) -> str:
    """A step (:func:`is_mask`) as a boolean comparison, ``(x > 0)``."""
    return PRINTER._mask(step)
