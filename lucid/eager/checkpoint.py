"""``lucid.save`` and ``lucid.load``: nested state in a file that cannot run code when loaded.

The file is an ``.npz`` archive: the arrays as ``a0``, ``a1``, ... and the
structure around them (dicts, lists, tuples, numbers, strings, None, which
array is a Tensor) as JSON in ``structure``. Loading reads it with
``allow_pickle=False``, so a file that holds pickled objects (a crafted
one included) is refused before anything in it is run.

>>> import io, numpy as np, lucid
>>> f = io.BytesIO()
>>> lucid.save({"w": np.ones(2), "epoch": 3}, f)
>>> _ = f.seek(0)
>>> lucid.load(f)
{'w': array([1., 1.]), 'epoch': 3}
"""
from __future__ import annotations

import json
import zipfile

import numpy as np

from .tensor import Tensor

FORMAT, VERSION = "lucid-checkpoint", 1


def save(obj, f):
    """Write ``obj`` (nested dicts, lists and tuples of arrays, Tensors, numbers, strings,
    None) to ``f``, a path or a binary file."""
    arrays = []
    structure = {"format": FORMAT, "version": VERSION, "root": _encode(obj, arrays, "obj")}
    named = {f"a{i}": a for i, a in enumerate(arrays)}
    named["structure"] = np.frombuffer(json.dumps(structure).encode(), np.uint8)
    if isinstance(f, (str, bytes)) or hasattr(f, "__fspath__"):
        with open(f, "wb") as out:  # (np.savez would add .npz to a path)
            np.savez(out, **named)
    else:
        np.savez(f, **named)


def _encode(obj, arrays, where):
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return {"value": obj}
    if isinstance(obj, (np.integer, np.floating, np.bool_)):
        return {"value": obj.item()}
    if isinstance(obj, Tensor):
        arrays.append(obj.data)
        return {"tensor": len(arrays) - 1, "requires_grad": bool(obj.requires_grad)}
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind not in "biuf":
            raise TypeError(f"lucid.save: {where} is a {obj.dtype} array; only numbers and "
                            "bools are saved")
        arrays.append(obj)
        return {"array": len(arrays) - 1}
    if isinstance(obj, dict):
        for k in obj:
            if not isinstance(k, (str, int)) or isinstance(k, bool):
                raise TypeError(f"lucid.save: {where} has a key {k!r}; keys must be str or int")
        return {"dict": [[k, _encode(v, arrays, f"{where}[{k!r}]")] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        kind = "list" if isinstance(obj, list) else "tuple"
        return {kind: [_encode(v, arrays, f"{where}[{i}]") for i, v in enumerate(obj)]}
    raise TypeError(f"lucid.save: {where} is a {type(obj).__name__}; lucid saves dicts, "
                    "lists, tuples, arrays, Tensors, numbers, strings and None")


def load(f):
    """Read what :func:`save` wrote. A file that is not a lucid checkpoint (a pickle, a
    foreign or corrupt archive) is a ValueError, and nothing in it is run."""
    name = getattr(f, "name", f)
    try:
        with np.load(f, allow_pickle=False) as archive:
            if not hasattr(archive, "files") or "structure" not in archive.files:
                raise ValueError("no lucid structure in it")
            structure = json.loads(archive["structure"].tobytes().decode())
            if not isinstance(structure, dict) or structure.get("format") != FORMAT:
                raise ValueError("no lucid structure in it")
            if structure.get("version") != VERSION:
                raise ValueError(f"version {structure.get('version')!r}, this lucid reads "
                                 f"{VERSION}")
            arrays = {k: archive[k] for k in archive.files if k != "structure"}
            return _decode(structure["root"], arrays)
    except (ValueError, KeyError, TypeError, OSError, EOFError, zipfile.BadZipFile,
            UnicodeDecodeError) as e:
        raise ValueError(f"lucid.load: {name!r} is not a lucid checkpoint ({e})") from None


def _decode(node, arrays):
    if not isinstance(node, dict) or len(node) not in (1, 2):
        raise ValueError(f"malformed entry {node!r}")
    if "value" in node:
        return node["value"]
    if "array" in node:
        return arrays[f"a{int(node['array'])}"]
    if "tensor" in node:
        return Tensor(arrays[f"a{int(node['tensor'])}"],
                      requires_grad=bool(node.get("requires_grad", False)))
    if "dict" in node:
        return {k: _decode(v, arrays) for k, v in node["dict"]}
    if "list" in node:
        return [_decode(v, arrays) for v in node["list"]]
    if "tuple" in node:
        return tuple(_decode(v, arrays) for v in node["tuple"])
    raise ValueError(f"malformed entry {node!r}")
