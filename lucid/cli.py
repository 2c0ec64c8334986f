"""The ``lucid`` command line.

``lucid inspect FILE.py:FACTORY --input NAME:SHAPE ...`` imports ``FILE.py``,
calls ``FACTORY()`` for a module (or a function of lucid ops), compiles it on
placeholders of the given shapes and prints what was built: a summary table,
the typed listing, DOT text, an SVG picture (per op or per module), the
graph as JSON or the generated source.

Exit status: 0 on success, 2 for a bad command line (unknown option, bad
shape, missing file or factory), 1 when the factory or the compiler fails.
Errors are one line on stderr.

Examples
--------
::

    lucid inspect model.py:make_net --input x:N,64 --mode train --format listing
    lucid inspect model.py:make_net --input x:None,64 --format svg -o net.svg
    lucid inspect model.py:make_net --input x:N,64 --format svg --detail module -o net.svg
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import sys

FORMATS = ("table", "listing", "dot", "svg", "json", "code")


class UsageError(Exception):
    """A problem with the command line; exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but errors are one line and exit 2 through :class:`UsageError`."""

    def error(self, message):
        raise UsageError(message)


def parse_shape(text: str) -> tuple:
    """``"N,64"`` -> ``("N", 64)``; ``None`` is a size the placeholder names itself.

    Examples
    --------
    >>> parse_shape("None,64"), parse_shape("32,64,16"), parse_shape("")
    ((None, 64), (32, 64, 16), ())
    """
    text = text.strip().strip("()[]")
    if not text:
        return ()
    dims = []
    for part in (p.strip() for p in text.split(",")):
        if part.isascii() and part.isdigit():  # "²".isdigit() is True too
            dims.append(int(part))
        elif part == "None":
            dims.append(None)
        elif part.isidentifier():
            dims.append(part)
        else:
            raise UsageError(f"bad dim {part!r} in shape {text!r}: use a non-negative int, "
                             "None or a name such as N")
    return tuple(dims)


def parse_input(spec: str) -> tuple:
    """``"x:N,64"`` -> ``("x", ("N", 64))``."""
    name, sep, shape = spec.partition(":")
    if not sep or not name.isidentifier():
        raise UsageError(f"bad --input {spec!r}: expected NAME:SHAPE such as x:N,64")
    return name, parse_shape(shape)


def load_target(target: str):
    """Import ``FILE.py:FACTORY`` and return the module or function it makes."""
    path, sep, attr = target.rpartition(":")
    if not sep or not path or not attr:
        raise UsageError(f"bad target {target!r}: expected FILE.py:FACTORY")
    if not os.path.isfile(path):
        raise UsageError(f"no such file: {path}")
    name = "_lucid_inspect_" + "".join(c if c.isalnum() else "_" for c in
                                       os.path.splitext(os.path.basename(path))[0])
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None:
        raise UsageError(f"cannot import {path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    folder = os.path.dirname(os.path.abspath(path))
    sys.path.insert(0, folder)  # so the file can import its neighbours
    sys.modules[name] = module  # dataclasses and pickling look a module up here
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        del sys.modules[name]
        raise RuntimeError(f"importing {path} failed: {type(e).__name__}: {e}") from e
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(folder)
    if not hasattr(module, attr):
        raise UsageError(f"{path} has no {attr!r}")
    factory = getattr(module, attr)
    if hasattr(factory, "named_parameters") and not isinstance(factory, type):
        return factory  # already a module instance
    if not callable(factory):
        raise UsageError(f"{path}:{attr} is not callable")
    try:
        made = factory()
    except Exception as e:
        raise RuntimeError(f"{attr}() failed: {type(e).__name__}: {e}") from e
    if not callable(made):
        raise RuntimeError(f"{attr}() returned {type(made).__name__}, not a module or function")
    return made


def _parser():
    parser = _Parser(prog="lucid", description="Inspect what lucid compiles.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    inspect = commands.add_parser("inspect", help="compile a model and show its graph or code")
    inspect.add_argument("target", metavar="FILE.py:FACTORY",
                         help="a file and a zero-argument callable returning a module")
    inspect.add_argument("--input", action="append", required=True, metavar="NAME:SHAPE",
                         help="a placeholder, e.g. x:N,64 (repeat for more inputs)")
    inspect.add_argument("--mode", choices=("train", "eval"), default="train")
    inspect.add_argument("--format", choices=FORMATS, default="listing")
    inspect.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    inspect.add_argument("-o", "--output", metavar="OUT", help="write here instead of stdout")
    inspect.add_argument("--rankdir", choices=("TB", "LR", "BT", "RL"), default="TB",
                         help="direction of dot/svg drawings")
    inspect.add_argument("--group-by-module", action="store_true",
                         help="draw module scopes as clusters in op-level dot/svg output")
    inspect.add_argument("--detail", choices=("op", "module"), default="op",
                         help="dot/svg: one node per op, or one per module call")
    return parser


def inspect(args) -> None:
    """Run ``lucid inspect`` on parsed arguments."""
    if args.format == "svg" and not args.output:
        raise UsageError("--format svg writes a file: give -o OUT.svg")
    inputs = [parse_input(s) for s in args.input]
    names = [n for n, _ in inputs]
    if len(set(names)) != len(names):
        raise UsageError(f"input names repeat: {names}")
    fn = load_target(args.target)

    import lucid  # noqa: PLC0415  (keep `lucid --help` fast)
    try:
        placeholders = [lucid.placeholder(shape, args.dtype, name=n) for n, shape in inputs]
        program = lucid.compile(fn, *placeholders, mode=args.mode)
    except Exception as e:
        raise RuntimeError(f"compiling failed: {type(e).__name__}: {e}") from e
    graph = program.graph
    if args.format == "svg":
        graph.render(args.output, format="svg", rankdir=args.rankdir,
                     group_by_module=args.group_by_module, detail=args.detail)
        return
    text = {"table": graph.summary, "listing": lambda: str(graph), "code": lambda: program.source,
            "json": graph.to_json,
            "dot": lambda: graph.to_dot(rankdir=args.rankdir, group_by_module=args.group_by_module,
                                        detail=args.detail)}[args.format]()
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text if text.endswith("\n") else text + "\n")
    else:
        print(text.rstrip("\n"))


def main(argv=None) -> int:
    """Entry point of the ``lucid`` console script; returns the exit status.

    Examples
    --------
    >>> main(["inspect", "no_such_file.py:make", "--input", "x:N,3"])
    2
    """
    try:
        args = _parser().parse_args(argv)
        inspect(args)
    except UsageError as e:
        print(f"lucid: error: {e}", file=sys.stderr)
        return 2
    except (RuntimeError, OSError) as e:
        print(f"lucid: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
