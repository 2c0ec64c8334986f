"""Emitting Python source for planned items: fused NumPy statements.

Small values (per-channel statistics, scales, counts) are printed as one
expression each. Large values are written into a destination array with
``out=`` ufunc calls (:mod:`.linear`: an expression linear in its large
operands, ``sum_i k_i * f_i + c``, costs one pass per term and no temporaries
beyond one scratch array); a reduction is one pass in the form :mod:`.reduce` picks
by measurement (``np.einsum``, of a product of two operands too, never materialising
the product; or a matrix product with ones).
Node names are checked identifiers (:meth:`lucid.graph.Graph.fresh_name`);
anything else a user wrote reaches the source only through :func:`comment`.
"""
from __future__ import annotations

import sympy as sp

from ..ops import FLOATS, REGISTRY
from ..ops.nonfinite import is_constant
from ..ops.shapes import fit, strip_units
from .linear import LARGE, LinearForms, is_large  # noqa: F401  (LARGE: re-exported)
from .memory import Pool, donate
from .spine import SpineForms, worth
from .plan import VIEWS
from .printer import is_mask, to_numpy_source
from . import reduce
from .text import comment, describe, shape_source

def src(expr, scalars=None) -> str:
    return to_numpy_source(expr, scalars)


class Emitter(LinearForms, SpineForms):
    """Writes the statements of one generated function."""

    def __init__(self, plan, fn_name, fresh, returned=(), params=(), last=None, readers=None):
        self.plan, self.fn, self.fresh = plan, fn_name, set(fresh)
        self.returned = set(returned)
        self.defined = {sp.Symbol(str(p), real=True) for p in params}  # names bound so far
        self.computed = set()  # symbols this function computes (not its parameters)
        self.last = {str(s): i for s, i in (last or {}).items()}  # symbol -> last reader
        self.pool = Pool(fn_name)  # scratch slots, taken and given back by live range
        self.index = 0  # position of the item being emitted
        self.passing = []  # scratch arrays that live only inside the current item
        self.readers = readers or {}  # symbol -> the items reading it
        self.lines = []
        self.scratch = 0
        self._k_names = sp.numbered_symbols("_k", real=True)
        self.alias = {}  # output symbol -> the symbol it is returned as
        self.current = None  # the symbol being computed
        self.expanded = {}  # per-channel operands laid out for long inner loops
        self.k_defs = {}  # _k symbols of shared coefficient parts -> their values
        self.region = None  # while emitting a kernel over channel slices: its twin.Region
        self.twinned = False  # the function has a parallel twin (set by generate)
        self.donors = {}  # output symbol -> the input whose array it may be computed into
        self.donated = set()  # the output symbols that were

    def src(self, expr):
        return src(expr, self.plan.scalars)

    def shape_source(self, shape):
        """A shape tuple's source; in a kernel the channel axis is the slice's ``_width``."""
        return shape_source(shape, self.region.position(shape) if self.region else None)

    # -- buffers ------------------------------------------------------------------------
    def buffer(self, symbol, shape, dtype):
        """Destination for a large value: when returned, an array an earlier call returned
        that nobody holds any more, else a new one (``_result`` in the prelude); otherwise a
        scratch slot that is free over the value's live range (:mod:`lucid.codegen.memory`)."""
        if symbol in self.fresh:
            source = f"_result('{self.fn}.{symbol}', {shape_source(shape)}, np.{dtype})"
        else:
            slot = self.pool.take(str(symbol), str(symbol), (shape_source(shape), dtype),
                                  self.index)
            source = f"_buffer({slot!r}, {shape_source(shape)}, np.{dtype})"
        # a kernel writes its slice of an array the driver allocates whole
        return self.region.allocate(str(symbol), shape, source) if self.region else source

    def place(self, name, it):
        """Compute a large item: into a :meth:`buffer` (a scratch slot, or for a returned
        value an array nobody holds any more), or into the result of an op that dies here
        (a bias added into its matmul's result). A value not linear in its large operands
        is computed in the buffer along its spine (:mod:`lucid.codegen.spine`); a small one
        ends in a ufunc writing the buffer (``outermost``), else NumPy's array is it."""
        donor = self.donors.get(it.symbol)
        if donor is not None and donate(self, name, it, donor):
            return
        atoms = self.plan.sym.atoms
        same = {atoms[s].dtype for s in self.plan.sym.reads(it.expr) if atoms[s].shape != ()} \
            == {it.dtype}
        whole = not is_mask(it.expr) and not it.expr.is_Mul and \
            self.linear_terms(it.expr, it.shape) is None
        if whole and it.dtype in FLOATS:  # in a kernel over slices too: dest is the slice
            last = self.relu_into(it.expr, name, it.shape, it.dtype)
            spine = last is None and (worth(it.shape) or self.region is not None)
            if not spine and last is None:
                last = self.outermost(it.expr, name)  # small: NumPy whole, into the buffer
            if spine or last is not None:
                self.lines.append(f"{name} = {self.buffer(it.symbol, it.shape, it.dtype)}")
                if spine:
                    self.spine(it.expr, name, it.shape, it.dtype)
                else:
                    self.lines.append(last)
                return
        if it.symbol in self.fresh and same and self.region is None and whole:
            self.into(it.expr, name, it.shape, it.dtype, allocate=True)
            return
        target = None if it.symbol in self.fresh else self.epilogue_target(it)
        if target is not None:
            if target in self.pool.live:  # its slot too: kept until this value's last use
                self.pool.live[name] = self.pool.live.pop(target)
            self.lines.append(f"{name} = {target}")  # its memory, now this value's
            if self.region is not None:  # in the driver too, for the statements after
                self.region.driver.append(f"{name} = {target}")
                self.region.full[name] = self.region.position(it.shape)
        else:
            self.lines.append(f"{name} = {self.buffer(it.symbol, it.shape, it.dtype)}")
        self.into(it.expr, name, it.shape, it.dtype,
                  first=None if target is None else sp.Symbol(target, real=True))

    def epilogue_target(self, it):
        """The operand ``it`` may be computed into: its first large term, when that is the
        fresh result of an op (not a view) computed here, of the same shape and dtype, and
        read by nothing after ``it``. ``into`` reads it in its first statement only."""
        terms = self.linear_terms(it.expr, it.shape)
        if not terms:
            return None
        terms = sorted([(k, f) for k, f in terms if f != 1], key=lambda t: abs(t[0]) != 1)
        f = terms[0][1] if terms else None
        atom = self.plan.sym.atoms.get(f)
        if atom is None or atom.kind != "op" or f not in self.computed or f in self.fresh:
            return None
        if self.plan.graph.node(atom.nodes[0]).op in VIEWS or self.last.get(str(f)) != self.index:
            return None
        if tuple(atom.shape) != tuple(it.shape) or atom.dtype != it.dtype:
            return None
        return str(f)

    def scratch_buffer(self, shape, dtype, fresh=False):
        self.scratch += 1
        name = f"_s{self.scratch}"
        if fresh:  # a view of it may be returned
            self.lines.append(f"{name} = np.empty({shape_source(shape)}, np.{dtype})")
            return name
        slot = self.pool.take(name, name, (shape_source(shape), dtype), self.index)
        self.passing.append(name)
        source = f"_buffer({slot!r}, {shape_source(shape)}, np.{dtype})"
        if self.region is not None:
            source = self.region.allocate(name, shape, source)
        self.lines.append(f"{name} = {source}")
        return name

    # -- items ----------------------------------------------------------------------------
    def item(self, it):
        self.current = it.symbol
        self._item(it)
        self.defined.add(it.symbol)
        self.computed.add(it.symbol)
        # give back the slots of values read for the last time (a never-read one at once)
        for owner in self.passing + [o for o in list(self.pool.live)
                                     if self.last.get(o, self.index) <= self.index]:
            if owner in self.pool.live:
                self.pool.give(owner, self.index)
        self.passing = []
        self.index += 1

    def _item(self, it):
        if not (it.kind == "output" and it.expr.is_Symbol):  # a bare alias needs no comment
            self.lines.extend(f"# {comment(c)}" for c in describe(self.plan, it))
        name = str(it.symbol)
        if it.kind == "reduce":
            self.reduction(name, it)
        elif it.kind == "op":
            self.op(name, it)
        elif it.kind == "cast":
            self.lines.append(f"{name} = np.asarray({self.src(it.args[0])}, dtype=np.{it.dtype})")
        elif it.kind == "let" and is_large(it.shape):
            self.place(name, it)
        elif it.kind == "let":
            self.lines.append(f"{name} = {self.src(it.expr)}")
        else:
            self.output(name, it)

    def output(self, name, it):
        """An output gets its node's exact shape and dtype and never aliases another array."""
        shape, dtype = self.plan.sym.shape_of(it.expr), self.plan.sym.dtype_of(it.expr)
        atoms = bool(self.plan.sym.reads(it.expr))
        if tuple(shape) == tuple(it.shape) and is_large(shape) and not it.expr.is_Atom:
            self.place(name, it)
            return
        if is_constant(it.expr):  # a constant output, e.g. an identically zero gradient
            self.lines.append(f"{name} = np.full({shape_source(it.shape)}, {self.src(it.expr)}, "
                              f"np.{it.dtype})")
            return
        value = self.src(it.expr)
        copy = dtype != it.dtype or not atoms or self.plan.aliases_input(it.expr)
        copy = copy or it.expr in self.alias.values()  # two outputs never share one array
        if it.expr.is_Symbol and not copy and tuple(shape) == tuple(it.shape):
            self.alias[it.symbol] = it.expr  # returned under its own name
            return
        if tuple(shape) != tuple(it.shape):
            if strip_units(shape) == strip_units(it.shape):
                value = f"({value}).reshape({shape_source(it.shape)})"
            else:
                value, copy = f"np.broadcast_to({value}, {shape_source(it.shape)})", True
        self.lines.append(f"{name} = np.array({value}, dtype=np.{it.dtype})" if copy
                          else f"{name} = {value}")

    def reduction(self, name, it):
        """A sum over axes in the form :func:`lucid.codegen.reduce.choose` picks: one
        ``np.einsum`` pass, or a matrix product with ones.

        A forward sum of a single float32 operand accumulates in float64: that
        is the mean of raw data, where a float32 running sum of values like
        1e4 loses the digits that the normalised output is made of. (Backward
        sums feed gradients, whose error is relative to their own size.)
        """
        mono, axes = it.expr, it.axes
        factors = _factors(mono)
        shape = self.plan.sym.shape_of(mono)
        reduced = tuple(d for a, d in enumerate(shape) if a not in axes)
        fix = "" if strip_units(reduced) == tuple(it.shape) and len(reduced) == len(it.shape) \
            else f".reshape({self.shape_source(it.shape)})"
        same = all(f.is_Symbol and self.plan.sym.shape_of(f) == shape for f in factors)
        if not (same and len(factors) <= 2):
            tmp = self.scratch_buffer(shape, it.dtype)
            self.into(mono, tmp, shape, it.dtype)
            factors = [sp.Symbol(tmp)]
        letters = "abcdefghijklmnopqrstuvwxyz"[:len(shape)]
        kept = "".join(c for i, c in enumerate(letters) if i not in axes)
        spec = ",".join([letters] * len(factors)) + "->" + kept
        widen = len(factors) == 1 and it.dtype == "float32" and not it.backward
        twinned = self.twinned or self.region is not None
        form = reduce.choose(len(factors), it.dtype, widen, axes, shape, twinned)
        self.lines.extend(reduce.lower(form, name, spec, list(map(str, factors)), shape,
                                       it.dtype, fix))

    def op(self, name, it):
        g = self.plan.graph.node(it.node)
        args = []
        for a, inp in zip(it.args, g.inputs if g.op != "sum" else [None]):
            shape = self.plan.sym.shape_of(a)
            if a.is_Atom or not is_large(shape):
                value = self.src(a)
            else:
                value = self.scratch_buffer(shape, self.plan.sym.dtype_of(a),
                                            fresh=g.op in VIEWS)
                self.into(a, value, shape, g.dtype)
            want = self.plan.graph.node(inp) if inp is not None else None
            if want is not None and is_constant(a) and want.dtype in FLOATS:
                value = f"np.{want.dtype}({value})"  # np.where(c, 1.0, 0.0) would be float64
            if want is not None and g.op == "reshape" and not is_constant(a) and \
                    _same_size(shape, want.shape):
                want = None  # reshape only needs the right number of elements
            if want is not None and tuple(shape) != tuple(want.shape):
                # broadcasting was implicit in the expression; a structural op needs the real shape
                if is_constant(a):
                    value = f"np.asarray({value}, dtype=np.{want.dtype})"
                if strip_units(shape) == strip_units(want.shape):
                    value = f"({value}).reshape({shape_source(want.shape)})"
                else:
                    value = f"np.broadcast_to({value}, {shape_source(want.shape)})"
            args.append(value)
        if g.op == "sum":  # a reduction whose dropped axes need a real reshape
            in_shape = self.plan.graph.node(g.inputs[0]).shape
            kept = tuple(1 if i in g.attrs["axes"] else d for i, d in enumerate(in_shape))
            if strip_units(self.plan.sym.shape_of(it.args[0])) != strip_units(kept):
                # constant along a kept axis (a broadcast lower-rank value): spread it first
                args[0] = f"np.broadcast_to({args[0]}, {shape_source(kept)})"
            value = f"({args[0]}).reshape({shape_source(g.shape)})"
        elif self.transposed_only(it, g) and self.into_buffer(it, g):
            # read only as its transpose (a weight gradient, x.T @ dy): compute that
            # transpose C-ordered, (dy.T @ x), into a buffer, and let this be its free .T view
            a, b = [a if _simple(a) else f"({a})" for a in args]
            self.lines.append(f"{name} = {self.buffer(it.symbol, g.shape[::-1], g.dtype)}"
                              f"  # C-ordered; {name} is its .T")
            self.lines.append(f"{REGISTRY[g.op].lower_into}({b}.T, {a}.T, out={name})")
            value = f"{name}.T"
        elif self.transposed_only(it, g):
            a, b = [a if _simple(a) else f"({a})" for a in args]
            value = f"({b}.T @ {a}.T).T"
        elif self.into_buffer(it, g):
            # a fresh 256 KiB result is mmapped and page-faulted in at every call; a buffer
            # that is already mapped is not (a scratch slot is taken before this item's
            # operands give theirs back, so it is never one of theirs)
            self.lines.append(f"{name} = {self.buffer(it.symbol, g.shape, g.dtype)}")
            self.lines.append(f"{REGISTRY[g.op].lower_into}({', '.join(args)}, out={name})")
            return
        else:
            args = [a if _simple(a) else f"({a})" for a in args]
            value = REGISTRY[g.op].lower(g.attrs, shape_source, *args)
        if it.symbol in self.returned and g.op in VIEWS and any(
                self.plan.aliases_input(a) or a in self.returned for a in it.args):
            value = f"({value}).copy()"  # a returned view shares no memory with an input or output
        self.lines.append(f"{name} = {value}")

    def into_buffer(self, it, g):
        """Whether op item ``it`` can write its result into a :meth:`buffer`: an op whose
        record has an ``out=`` form (``lower_into``), a large result computed whole (not in
        a kernel over channel slices), from operands of its own dtype (no casting)."""
        return bool(REGISTRY[g.op].lower_into) and self.region is None and \
            is_large(g.shape) and all(self.plan.graph.node(i).dtype == g.dtype for i in g.inputs)

    def transposed_only(self, it, g):
        """Whether a 2-D matmul item is read only by 2-D transposes (and is no result)."""
        readers = self.readers.get(it.symbol)
        if g.op != "matmul" or not readers or it.symbol in self.returned or len(g.shape) != 2:
            return False
        if any(len(self.plan.graph.node(i).shape) != 2 for i in g.inputs):
            return False
        return all(r.kind == "op" and self.plan.graph.node(r.node).op == "transpose" and
                   tuple(self.plan.graph.node(r.node).attrs["perm"]) == (1, 0) for r in readers)

    def operand(self, expr, shape):
        """A small operand of an op over ``shape``, laid out for a fast inner loop.

        A per-channel value of shape (C, 1) against (N, C, L) leaves NumPy an
        inner loop of only L elements per channel; broadcast once to a
        contiguous (C, L) block (1/N of the work), every op over it runs on
        long inner loops, about twice as fast for 3D input.
        """
        source = self.small(expr)
        own = self.plan.sym.shape_of(expr.xreplace(self.k_defs))
        small = fit(own, len(shape))
        inner = tuple(shape)[1:]
        if not (small[0] == 1 and small[-1] == 1 and shape[-1] != 1
                and any(d != 1 for d in small)):
            return source
        if source in self.expanded:
            return self.expanded[source]
        name = self.expanded[source] = f"_e{len(self.expanded)}"
        leading = "[0]" if len(own) == len(shape) else ""
        self.lines.append(f"{name} = np.ascontiguousarray(np.broadcast_to(({source}){leading}, "
                          f"{self.shape_source(inner)}))")
        return name

    def coefficients(self, exprs):
        """Name the shared parts of small coefficients once (``_k0 = ...``); return them."""
        replacements, reduced = sp.cse(exprs, symbols=self._k_names, order="none")
        for sym, e in replacements:
            self.lines.append(f"{sym} = {self.small(e)}")
            self.k_defs[sym] = e.xreplace(self.k_defs)
            self.plan.scalars |= {sym} if e.free_symbols <= self.plan.scalars else set()
        return reduced

    def small(self, expr):
        """Source of a small value, naming a temporary that already holds it in this function
        (not the one being computed, nor one another function computes)."""
        known = self.plan.known.get(expr)
        return str(known) if known is not None and known in self.defined else self.src(expr)

def _factors(mono):
    if mono.is_Pow and mono.exp == 2:
        return [mono.base, mono.base]
    return list(sp.Mul.make_args(mono))


def _simple(s):
    return s.isidentifier()


def _same_size(a, b):
    return sorted(map(str, (d for d in a if d != 1))) == sorted(map(str, (d for d in b if d != 1)))
