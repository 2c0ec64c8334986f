"""Large non-linear values as a chain of in-place ufunc passes: the other half of the emitter.

NumPy evaluating ``x * (1 - s) * g`` or ``1 / (1 + exp(-x))`` whole makes a
new full-size array at every operation and, written into a destination, copies
the last one there. Instead, one path down the expression tree, its *spine*
(at each node the full-size operand that costs the most), is computed in the
destination itself, innermost first, and every other operand joins it with an
``out=`` ufunc: ``np.negative(x, out=d); np.exp(d, out=d); np.add(d, 1, out=d);
np.divide(1, d, out=d)``, four passes and no temporary (a sigmoid at 256x1024
float32: 186 us against 222 us evaluated whole and copied). An operand off the
spine that is itself large is evaluated by NumPy as before. Heads outside
:data:`UNARY` and powers outside ``-1, 2, 1/2, -1/2`` end the spine.
"""
from __future__ import annotations

import numpy as np
import sympy as sp

from ..ops import NUMPY_FUNCTIONS
from ..ops.shapes import static_size

#: A value of a static shape with fewer elements than this is left to NumPy whole: there a
#: call's fixed cost outweighs the temporaries (review: sqrt(x*x + y*y) at 16x16, 3.1 us whole
#: against 3.8 us along the spine; at 32x64 1.07-1.09x; from 64x256 on, at or below 1.03x).
MIN_ELEMENTS = 1 << 12
#: Heads with a one-argument NumPy ufunc: computed in place on the spine.
UNARY = {f: name for f, name in NUMPY_FUNCTIONS.items()
         if isinstance(getattr(np, name, None), np.ufunc) and getattr(np, name).nin == 1}
HALF = sp.Rational(1, 2)


def worth(shape):
    """Whether a value of ``shape`` is computed along its spine (see :data:`MIN_ELEMENTS`)."""
    size = static_size(shape)
    return size is None or size >= MIN_ELEMENTS


class SpineForms:
    """Writing non-linear large expressions into a destination (see the module docstring).
    Mixed into :class:`lucid.codegen.emit.Emitter`, which supplies ``lines``, ``src``,
    ``plan`` and ``scratch_buffer``."""

    def spine(self, expr, dest, shape, dtype, first=None):
        """Statements leaving ``expr`` in array ``dest``; the first writes ``dest`` from
        operands alone. ``first``: the symbol whose array ``dest`` is (see ``into``): it is
        read before ``dest`` is written, or the result comes back wrong and the caller's
        check refuses it."""
        self._dtype = dtype
        if first is not None and (expr.is_Add or expr.is_Mul) and first in expr.args:
            rest = expr.func(*[a for a in expr.args if a != first])
            if self._full(rest, shape) and not rest.is_Symbol:  # the rest aside, then first
                tmp = self.scratch_buffer(tuple(shape), dtype)
                self.spine(rest, tmp, shape, dtype)
                op = "add" if expr.is_Add else "multiply"
                self.lines.append(f"np.{op}({first}, {tmp}, out={dest})")
                return
        self._node(expr, dest, shape, first)

    def outermost(self, expr, dest):
        """``expr`` as NumPy would evaluate it whole, its outermost operation a ufunc call
        writing into ``dest`` (the same passes, no copy); None if that operation is no ufunc.
        For values too small for the spine (:func:`worth`). An expression of a float dtype:
        ``out=`` casts as ``same_kind``."""
        if expr.is_Add:
            *head, tail = expr.args
            return f"np.add({self.src(sp.Add(*head))}, {self.src(tail)}, out={dest})"
        name = NUMPY_FUNCTIONS.get(expr.func)
        ufunc = getattr(np, name, None) if name is not None else None
        if not isinstance(ufunc, np.ufunc) or len(expr.args) != ufunc.nin:
            return None
        return f"np.{name}({', '.join(self.src(a) for a in expr.args)}, out={dest})"

    def _full(self, e, shape):
        return self.plan.sym.shape_of(e) == tuple(shape)

    def _chain(self, e, shape):
        """Whether ``e`` continues the spine: a full-size value of a form computed in place
        (``-y`` of a ``y`` off the spine is not: it joins as a subtraction or a negation)."""
        if e.is_Symbol or e.is_number or not self._full(e, shape) or \
                (_negated(e) and not self._chain(-e, shape)):
            return False
        if e.is_Pow:
            return e.exp in (-1, 2, HALF, -HALF)
        return e.is_Add or e.is_Mul or (e.func in UNARY and len(e.args) == 1)

    def _node(self, e, dest, shape, first=None):
        emit = self.lines.append
        if not self._chain(e, shape):
            emit(f"np.copyto({dest}, {self.src(e)}, casting='unsafe')")
            return
        if e.is_Pow or e.func in UNARY:
            base = e.base if e.is_Pow else e.args[0]
            start = dest if self._chain(base, shape) or _negated(base) else None
            if self._chain(base, shape):
                self._node(base, dest, shape, first)
            elif start is not None:  # exp(-x): the negation in place first
                emit(f"np.negative({self.src(-base)}, out={dest})")
            source = start or self.src(base)
            if e.is_Pow and e.exp == 2:
                emit(f"np.multiply({source}, {source}, out={dest})")
            elif e.is_Pow and e.exp == -1:
                emit(f"np.divide(1, {source}, out={dest})")
            elif e.is_Pow:  # x**(1/2), x**(-1/2): the square root, then its inverse
                emit(f"np.sqrt({source}, out={dest})")
                if e.exp == -HALF:
                    emit(f"np.divide(1, {dest}, out={dest})")
            else:
                emit(f"np.{UNARY[e.func]}({source}, out={dest})")
            return
        self._join(e, dest, shape, first)

    def _join(self, e, dest, shape, first):
        """A sum or product: its costliest chained operand in ``dest``, then the others (the
        operand holding ``first``, if one does, instead of the costliest)."""
        emit = self.lines.append
        args, den = list(e.args), []
        if e.is_Mul:  # 1/y of a y off the spine joins by a division, as the printer writes it
            den = [a for a in args if a.is_Pow and a.exp == -1 and not self._chain(a.base, shape)]
            args = [a for a in args if a not in den]
        chained = [a for a in args if self._chain(a, shape)]
        holders = [a for a in args if first is not None and first in a.free_symbols]
        if len(holders) == 1 and not self._chain(holders[0], shape):
            start, rest = self.src(holders[0]), [a for a in args if a is not holders[0]]
        elif chained:
            head = holders[0] if len(holders) == 1 else max(chained, key=sp.count_ops)
            rest = [a for a in args if a is not head]
            if e.is_Add and _negated(head) and rest:  # c - f(x): f(x), then one subtract
                self._node(-head, dest, shape, first)
                emit(f"np.subtract({self.src(sp.Add(*rest))}, {dest}, out={dest})")
                return
            self._node(head, dest, shape, first)
            start = dest
        elif not args:  # 1/(a b): denominators only (review: this once raised IndexError)
            emit(f"np.divide(1, {self.src(1 / den[0])}, out={dest})")
            start, rest, den = dest, [], den[1:]
        else:  # full-size operands only: the first writes dest
            full = [a for a in args if self._full(a, shape)] or args
            start, rest = self.src(full[0]), [a for a in args if a is not full[0]]
            if e.is_Add and _negated(full[0]):  # c - y: one pass
                emit(f"np.subtract({self.src(sp.Add(*rest))}, {self.src(-full[0])}, out={dest})")
                return
        if e.is_Add:
            other = sp.Add(*rest)
            negative = other.could_extract_minus_sign()
            other = -other if negative else other
            source = self.src(other)
            if self._chain(other, shape):  # a large sum of its own: in a scratch array
                source = self.scratch_buffer(tuple(shape), self._dtype)
                self._node(other, source, shape)
            emit(f"np.{'subtract' if negative else 'add'}({start}, {source}, out={dest})")
            return
        large = [a for a in rest if self._full(a, shape)]
        small = sp.Mul(*[a for a in rest if a not in large])
        for a in large:  # one pass each: no full-size product of them made first
            if a.is_Pow and a.exp == -1:
                emit(f"np.divide({start}, {self.src(a.base)}, out={dest})")
            else:
                emit(f"np.multiply({start}, {self.src(a)}, out={dest})")
            start = dest
        if small == -1:
            emit(f"np.negative({start}, out={dest})")
        elif small != 1 or start != dest:
            emit(f"np.multiply({start}, {self.src(small)}, out={dest})")
        for d in den:
            emit(f"np.divide({dest}, {self.src(1 / d)}, out={dest})")


def _negated(e):
    """Whether ``e`` is ``-y``."""
    return e.is_Mul and e.as_coeff_Mul()[0] == -1
