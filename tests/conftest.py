"""Fixtures shared by the test files."""
import pytest

from lucid import compiler
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
