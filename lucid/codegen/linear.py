"""Large values as out= ufunc passes: the linear-form half of the emitter.

An expression linear in its large operands, ``sum_i k_i * f_i + c``, costs
one pass per term into a destination array and no temporaries beyond one
scratch array; a product of arrays and comparison masks is one ``out=``
multiply per factor. :class:`LinearForms` is mixed into
:class:`lucid.codegen.emit.Emitter`, which supplies ``lines``, ``src``,
``small``, ``operand``, ``coefficients`` and ``scratch_buffer``.
"""
from __future__ import annotations

import sympy as sp

from ..ops import FLOATS, nonfinite
from .printer import is_mask, mask_source
from .spine import worth
from .text import shape_source

LARGE = 256  # static element count from which a value is computed in place
#: Most values max(0, x) reads zeros for (beyond: the scalar 0): 16 MiB of float32 per
#: program and dtype (counted per call of ``_zeros``: per slice in a parallel kernel). It is
#: written into the source of ``_zeros`` (:data:`HELPER`) when lucid is imported.
ZEROS_LIMIT = 1 << 22

# helper the generated module defines (generate.PRELUDE)
HELPER = f'''

_zeros_cache = {{}}


def _zeros(shape, dtype):
    """Zeros of ``shape``, read-only: a view of one vector per dtype kept between calls
    (as long as the longest asked for), so that max(0, x) runs NumPy's vectorised loop
    of two arrays; against the scalar 0 it takes a value at a time. Past {ZEROS_LIMIT}
    values (the memory held), the scalar."""
    n = 1
    for d in shape:
        n *= d
    if n > {ZEROS_LIMIT}:
        return dtype(0)
    zeros = _zeros_cache.get(dtype)
    if zeros is None or len(zeros) < n:
        zeros = np.zeros(n, dtype)
        zeros.flags.writeable = False
        _zeros_cache[dtype] = zeros
    return zeros[:n].reshape(shape)
'''


def is_large(shape) -> bool:
    size = 1
    for d in shape:
        if isinstance(d, str):
            return True
        size *= d
    return size >= LARGE


class LinearForms:
    """Writing large expressions into destination arrays (see the module docstring)."""

    def into(self, expr, dest, shape, dtype, allocate=False, first=None):
        """Write ``expr`` into array ``dest`` with out= ufunc calls.

        With ``allocate`` the first call creates ``dest`` (its operands all have
        ``dtype``, so the result does too). ``first``: a symbol whose array ``dest``
        is (a donated input, see ``Emitter.donate``): its term or factor is used first,
        so that nothing reads it after ``dest`` is written.
        """
        if is_mask(expr) and expr.args[0].is_Symbol:  # a mask alone: its comparison as 0/1
            # the comparison of every product with the mask, so 1 at NaN as there (and as
            # torch's ReLU backward); np.greater(x, 0, out=dest) would give 0
            if allocate:
                self.lines.append(f"{dest} = np.empty({shape_source(shape)}, np.{dtype})")
            self.lines.append(f"np.copyto({dest}, {mask_source(expr)})")
            return
        def start(op, *args):
            joined = ", ".join(map(str, args))
            self.lines.append(f"{dest} = np.{op}({joined})" if allocate
                              else f"np.{op}({joined}, out={dest})")

        if expr.is_Mul and self.product(expr, dest, shape, start, first):
            return
        terms = self.linear_terms(expr, shape)
        if terms is None:  # not linear in its large operands: in place, along its spine
            if allocate:
                self.lines.append(f"{dest} = np.asarray({self.src(expr)}, dtype=np.{dtype})")
            elif dtype in FLOATS and (worth(shape) or first is not None):
                self.spine(expr, dest, shape, dtype, first)
            else:
                self.lines.append(f"np.copyto({dest}, {self.src(expr)}, casting='unsafe')")
            return
        for i, (k, f) in enumerate(terms):
            if f != 1 and f.is_Mul:  # a product of arrays (and masks): a scratch array first
                tmp = self.scratch_buffer(tuple(shape), dtype)
                self.product(f, tmp, shape, lambda op, *a, _d=tmp: self.lines.append(
                    f"np.{op}({', '.join(map(str, a))}, out={_d})"))
                terms[i] = (k, sp.Symbol(tmp))
        const = sp.Add(*[k for k, f in terms if f == 1])
        terms = sorted([(k, f) for k, f in terms if f != 1],
                       key=lambda t: (t[1] != first, abs(t[0]) != 1))
        if not terms:
            if allocate:
                self.lines.append(f"{dest} = np.empty({shape_source(shape)}, np.{dtype})")
            self.lines.append(f"np.copyto({dest}, {self.small(const)}, casting='unsafe')")
            return
        *coeffs, const = self.coefficients([k for k, _ in terms] + [const])
        terms = list(zip(coeffs, [f for _, f in terms]))
        (k, f), rest = terms[0], terms[1:]
        emit = self.lines.append
        if k == 1 and rest and rest[0][0] in (1, -1):  # f ± g: one pass
            (k2, g), rest = rest[0], rest[1:]
            start("add" if k2 == 1 else "subtract", f, g)
        elif k == 1 and const != 0:  # f ± c: one pass
            negative = const.could_extract_minus_sign()
            start("subtract" if negative else "add", f, self.operand(-const if negative else const, shape))
            const = sp.Integer(0)
        elif k == -1 and const != 0:  # c - f: one pass
            start("subtract", self.operand(const, shape), f)
            const = sp.Integer(0)
        elif k == -1 and rest and rest[0][0] == 1:  # g - f: one pass
            (_, g), rest = rest[0], rest[1:]
            start("subtract", g, f)
        elif k == 1 and f == first:  # dest holds f already
            pass
        elif k == 1 and rest and not allocate:  # f + k2 g: k2 g into dest, then f: two passes
            (k2, g), rest = rest[0], rest[1:]
            negative = k2.could_extract_minus_sign()
            start("multiply", g, self.operand(-k2 if negative else k2, shape))
            emit(f"np.{'subtract' if negative else 'add'}({f}, {dest}, out={dest})")
        elif k == 1:
            start("positive", f) if allocate else emit(f"np.copyto({dest}, {f}, casting='unsafe')")
        elif k == -1:
            start("negative", f)
        else:
            start("multiply", f, self.operand(k, shape))
        for k, f in rest:
            if k in (1, -1):
                emit(f"np.{'add' if k == 1 else 'subtract'}({dest}, {f}, out={dest})")
                continue
            tmp = self.scratch_buffer(tuple(shape), dtype)
            negative = k.could_extract_minus_sign()
            emit(f"np.multiply({f}, {self.operand(-k if negative else k, shape)}, out={tmp})")
            emit(f"np.{'subtract' if negative else 'add'}({dest}, {tmp}, out={dest})")
        if const != 0:
            self.signed(dest, const, dest, shape)

    def relu_into(self, expr, dest, shape, dtype):
        """``max(0, x)`` of a value ``x`` of ``shape`` (a ReLU) into ``dest`` against an
        array of zeros (``_zeros``): NumPy's loop of an array and the scalar 0 takes a
        value at a time, 2.5-3x slower (256x256 float32: 25 us against 8 us). The zeros
        come first, as the 0 did, so ``-0.0`` and NaN come out bit for bit as before.
        None if ``expr`` is not that."""
        if expr.func is not sp.Max or expr.args[0] != 0 or len(expr.args) != 2:
            return None
        x = expr.args[1]
        if self.plan.sym.shape_of(x) != tuple(shape):
            return None
        return f"np.maximum(_zeros({dest}.shape, np.{dtype}), {self.src(x)}, out={dest})"

    def product(self, expr, dest, shape, start, first=None):
        """A product of arrays and steps (``k * g * step(y)``, a ReLU backward) as one
        multiply per array: no temporary beyond the boolean of each mask. ``first`` (the
        array ``dest`` is) multiplies first."""
        if not expr.is_Mul:
            return False
        arrays, masks, small = [], [], []
        for f in sp.Mul.make_args(expr):
            if is_mask(f) and f.args[0].is_Symbol:
                masks.append(f)
            elif self.plan.sym.shape_of(f) == tuple(shape) and f.is_Symbol:
                arrays.append(f)
            elif not is_large(self.plan.sym.shape_of(f)) and not f.has(sp.Heaviside):
                small.append(f)
            else:
                return False
        if not arrays or len(arrays) + len(masks) < 2:
            return False
        arrays.sort(key=lambda a: a != first)
        operands = arrays[1:] + [mask_source(m) for m in masks]
        k = sp.Mul(*small)
        if k != 1:
            start("multiply", arrays[0], self.operand(k, shape))
        else:
            start("multiply", arrays[0], operands.pop(0))
        for f in operands:
            self.lines.append(f"np.multiply({dest}, {f}, out={dest})")
        return True

    def signed(self, a, value, dest, shape):
        """``a + value`` as an add or, for a negated value, a subtract."""
        if value.could_extract_minus_sign():
            self.lines.append(f"np.subtract({a}, {self.operand(-value, shape)}, out={dest})")
        else:
            self.lines.append(f"np.add({a}, {self.operand(value, shape)}, out={dest})")

    def linear_terms(self, expr, shape):
        """``[(small coefficient, large symbol or 1)]`` if ``expr`` is linear in large symbols."""
        large = lambda e: self.plan.sym.shape_of(e) == tuple(shape)  # noqa: E731
        out = []
        for term in sp.Add.make_args(expr):
            big = [f for f in sp.Mul.make_args(term) if large(f)]
            small = sp.Mul(*[f for f in sp.Mul.make_args(term) if not large(f)])
            if not big:
                out.append((small, 1))
            elif len(big) == 1 and big[0].is_Symbol:
                out.append((small, big[0]))
            elif len(big) == 1 and big[0].is_Add:
                if nonfinite.involves(small):
                    return None  # inf * (a + b) is not inf*a + inf*b where b is 0
                inner = self.linear_terms(big[0], shape)
                if inner is None:
                    return None
                out.extend((small * k, f) for k, f in inner)
            elif all(f.is_Symbol or (is_mask(f) and f.args[0].is_Symbol) for f in big) and \
                    any(f.is_Symbol for f in big):
                out.append((small, sp.Mul(*big)))  # a product of arrays: see into()
            else:
                return None
        merged = {}
        for k, f in out:
            merged[f] = merged.get(f, 0) + k
        return [(k, f) for f, k in merged.items() if k != 0]
