"""The op record: everything about one primitive, in one place.

An :class:`Op` says what a node *means*. Every other layer reads it: shape
inference (``infer``), autodiff (``partials`` of an elementwise op, ``vjp`` of
a structural one), the reference executor (``run``), codegen (``expr``, or
``lower`` for a structural op), the tracer and the ``Tensor`` face
(``dunder``, ``method``). Nothing else keeps a list of ops.

Elementwise ops are defined by one sympy expression over :data:`ARGS`; their
partial derivatives are ``sympy.diff`` of it, derived once when the op is made,
with the few undefined points fixed by :data:`CONVENTIONS`.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Callable

import sympy as sp

from ..graph.graph import Attrs
from .reference import evaluate

ARGS = sp.symbols("a b", real=True)
#: The dtypes lucid computes in; a node's dtype is always one of these exact strings.
FLOATS = ("float32", "float64")
DTYPES = FLOATS + ("int64", "bool")

#: The conventions for what ``sympy.diff`` leaves undefined, one line each.
CONVENTIONS = {
    # relu'(0) = 0 and step'(x) = 0: the subgradient PyTorch and JAX use.
    sp.Heaviside: lambda x, *_: sp.Heaviside(x, 0),
    # sign'(x) = 0 and |x|' = sign(x), so |x|'(0) = 0, as in PyTorch.
    sp.DiracDelta: lambda *_: sp.Integer(0),
}


_W = sp.Wild("w")
#: Identities that keep a derivative finite where its first form divides infinities:
#: ``e^w / (1 + e^w)^2`` (the logistic sigmoid's derivative) is inf/inf = NaN once e^w
#: overflows (w > 88 in float32); ``s (1 - s)`` with ``s = 1 / (1 + e^w)`` is the same value,
#: 0 there, and reads the sigmoid the forward computed (torch's form: no second exp).
STABLE_FORMS = [
    (sp.exp(_W) / (1 + sp.exp(_W)) ** 2, (1 - 1 / (1 + sp.exp(_W))) / (1 + sp.exp(_W))),
]


def apply_conventions(expr):
    """Replace the undefined points of a derivative by lucid's conventions, and forms that
    overflow to NaN by equal ones that do not (:data:`STABLE_FORMS`)."""
    for func, rule in CONVENTIONS.items():
        expr = expr.replace(func, rule)
    for pattern, stable in STABLE_FORMS:
        expr = expr.replace(pattern, stable)
    return expr


class Kind(str, enum.Enum):
    """What kind of primitive an op is (a str enum: ``Kind.LEAF == "leaf"``)."""

    LEAF = "leaf"  # placeholder, constant
    ELEMENTWISE = "elementwise"  # defined by a sympy expression
    STRUCTURAL = "structural"  # reductions, shape changes, matmul, casts

    def __str__(self):
        return self.value

    def __format__(self, spec):
        return format(self.value, spec)


def _no_vjp(b, node, g):
    return (None,) * len(node.inputs)


def plain(value):
    """Whether ``value`` is made only of exact built-in scalars and tuples."""
    if type(value) is tuple:
        return all(plain(v) for v in value)
    return type(value) in (int, float, bool, str) or value is None


@dataclass(eq=False)
class Op:
    """One primitive.

    Attributes
    ----------
    name, arity, kind, doc
        ``arity`` None means any number of inputs.
    expr : sympy expression over :data:`ARGS` (elementwise ops)
        The definition; ``partials`` (d expr / d arg, per argument) are derived.
    integer : bool
        An elementwise op that keeps int64 inputs integral (else it computes in float).
    shape : callable ``(shapes, dtypes, attrs) -> (shape, dtype)`` (structural ops)
        Raises ValueError naming the op for ill-formed applications.
    vjp : callable ``(builder, node, g) -> gradient node or None per input`` (structural ops)
    run : callable ``(attrs, dims, *arrays) -> array`` (structural ops): the reference
        evaluation; ``dims`` resolves a symbolic shape to ints.
    lower : callable ``(attrs, shape_source, *args) -> str`` (structural ops): NumPy source.
    lower_into : str
        The NumPy function computing the op into a given array (``np.matmul(a, b,
        out=y)``), so codegen may give its result a reused buffer; empty: the lowering
        allocates its result.
    grad : str
        A structural op's rule in words, ``" | "`` between inputs, for printers.
    view : bool
        The lowering returns a view of its first argument (it may share memory).
    alias : bool
        On the ``Tensor`` face its result is a view of its first argument, sharing its
        memory, as torch's view ops (``reshape``, ``transpose``, basic indexing, ``detach``).
    differentiable : bool
        False for a value that does not depend on its input's values (a count).
    dunder : str
        The Python operator it implements (``"add"``: ``__add__`` and ``__radd__``).
    method : bool
        Offered as a method of ``Tensor`` and ``Var`` and as ``lucid.<name>``.
    logical : bool
        Takes bool inputs as they are (moves, comparisons); any other op sees a bool
        input converted to int64 first, as torch counts ``mask.sum()`` in integers.
    attributes : callable ``(attrs, dtype) -> attrs``
        The attribute schema: returns the attributes as plain built-in values
        (:mod:`.attributes`), or raises ValueError. None: the op takes none.
    """

    name: str
    arity: int | None
    kind: Kind
    doc: str = ""
    expr: sp.Expr = None
    integer: bool = False
    shape: Callable = None
    vjp: Callable = _no_vjp
    run: Callable = None
    lower: Callable = None
    lower_into: str = ""
    grad: str = ""
    view: bool = False
    alias: bool = False
    differentiable: bool = True
    dunder: str = ""
    method: bool = False
    logical: bool = False
    attributes: Callable = None
    partials: tuple = field(default=(), init=False)

    def __post_init__(self):
        if self.kind is Kind.ELEMENTWISE:
            args = ARGS[: self.arity]
            self.partials = tuple(apply_conventions(sp.diff(self.expr, s)) for s in args)

    def normalize(self, attrs, dtype=None):
        """``attrs`` as plain built-in values by this op's schema; ValueError if ill-formed.

        ``dtype`` is the node's, for leaves (a constant must fit it).
        """
        attrs = dict(attrs or {})
        if self.attributes is None:
            if attrs:
                raise ValueError(f"{self.name} takes no attributes, got {sorted(map(str, attrs))}")
            return attrs
        return self.attributes(attrs, dtype)

    def check_node(self, node):
        """Raise ValueError unless a graph node's attributes and dtype are this op's plain values.

        What ``Graph.lint`` asks of every node: a hand-built node cannot carry
        anything into generated source that node creation would not have made.
        """
        if type(node.dtype) is not str or node.dtype not in DTYPES:
            raise ValueError(f"dtype {node.dtype!r} is not one of {DTYPES}")
        if type(node.attrs) not in (dict, Attrs) or not all(
                type(k) is str and plain(v) for k, v in node.attrs.items()):
            raise ValueError(f"attributes {node.attrs!r} are not plain built-in values")
        if self.normalize(node.attrs, node.dtype) != node.attrs:
            raise ValueError(f"attributes {node.attrs!r} do not match the {self.name} schema")

    @property
    def elementwise(self):
        return self.kind is Kind.ELEMENTWISE

    def evaluate(self, *arrays):
        """Apply an elementwise op with NumPy (the reference semantics, :mod:`.reference`)."""
        return evaluate(self.expr, dict(zip(ARGS, arrays)))

    def gradient_rule(self):
        """The derived rule: d(out)/d(arg) for each argument, as sympy expressions."""
        return dict(zip(ARGS, self.partials))

    def rule(self, inputs):
        """A node's gradient rule: ``((input, d out / d input), ...)``.

        Elementwise ops give their sympy-derived partials with the input names
        substituted; structural ops give their rule in words.
        """
        if self.kind is Kind.LEAF:
            return ()
        if self.elementwise:
            env = {a: sp.Symbol(i, real=True) for a, i in zip(ARGS, inputs)}
            return tuple((i, p.xreplace(env)) for i, p in zip(inputs, self.partials))
        return tuple(zip(inputs, self.grad.split(" | ")))

    def __repr__(self):
        body = f", {self.expr}" if self.expr is not None else ""
        return f"<lucid op {self.name}/{self.arity} {self.kind}{body}>"


class Registry(dict):
    """Every op by name, telling its ``listeners`` of each change made as lucid makes them
    (item assignment and ``del``): ``listener(name, op)`` after ``REGISTRY[name] = op``,
    ``listener(name, None)`` after ``del REGISTRY[name]``.

    A higher layer that offers ops as attributes (``Tensor.exp``) installs them as the
    records come and go instead of looking each one up on every attribute read.

    Examples
    --------
    >>> registry, seen = Registry(), []
    >>> registry.listeners.append(lambda name, op: seen.append((name, op)))
    >>> registry["twice"] = "an Op"
    >>> del registry["twice"]
    >>> seen
    [('twice', 'an Op'), ('twice', None)]
    """

    def __init__(self):
        super().__init__()
        self.listeners = []

    def __setitem__(self, name, op):
        super().__setitem__(name, op)
        for listener in self.listeners:
            listener(name, op)

    def __delitem__(self, name):
        super().__delitem__(name)
        for listener in self.listeners:
            listener(name, None)


#: Every op by name; filled by :mod:`.elementwise` and :mod:`.structural`.
REGISTRY: Registry = Registry()
#: Names an op may not take, because ``Tensor.<name>``, ``Var.<name>`` or ``lucid.<name>``
#: already mean something else; the layers that offer those add their names (:func:`reserve`).
RESERVED_NAMES: set = set()


def reserve(*names):
    """Keep ops from being named like an existing attribute of a higher layer."""
    RESERVED_NAMES.update(n for n in names if not n.startswith("__"))


def operators():
    """``(dunder, reflected dunder or None, op name)`` for every op that is a Python operator.

    ``Var`` and ``Tensor`` install their operators from this, so an op record
    is the only place that says ``+`` is ``add``.
    """
    for op in REGISTRY.values():
        if op.dunder:
            reflected = f"__r{op.dunder}__" if op.arity == 2 else None
            yield f"__{op.dunder}__", reflected, op.name


def method_op(name):
    """The op offered as method ``name`` (``Tensor.exp``), or None."""
    op = REGISTRY.get(name)
    return op if op is not None and op.method else None
