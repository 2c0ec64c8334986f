"""Fixtures shared by the test files."""
import pytest

import lucid
from lucid import compiler
from lucid.codegen import parallel
from lucid.eager import programs


@pytest.fixture
def compiles(monkeypatch):
    """The number of programs compiled so far in the test (eager arithmetic starts uncompiled)."""
    count = [0]
    original = compiler.compile

    def counting(*args, **kwargs):
        count[0] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(compiler, "compile", counting)
    monkeypatch.setattr(programs, "_function_programs", {})
    return count


@pytest.fixture
def split_everything(monkeypatch):
    """Every function with a parallel twin of reductions runs it (thresholds of 1); the
    thread count restored afterwards."""
    monkeypatch.setattr(parallel, "MIN_ELEMENTS", 1)
    monkeypatch.setattr(parallel, "MIN_RUN", 1)
    before = lucid.get_num_threads()
    yield
    lucid.set_num_threads(before)
