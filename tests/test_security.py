"""Security and integrity (issue 13): the private code cache, binding by identity, validated
attributes and constants, no silent collisions, deep chains.

Each test reproduces a finding of the review exactly and asserts the fix. The tests run as
root in CI, so a directory can be given to another uid with ``os.chown``.
"""
import linecache
import os
import signal
import stat
import traceback

import numpy as np
import pytest

import lucid
import lucid.nn as nn
from lucid.codegen import cache
from lucid.runtime import run as reference_run

OTHER_UID = 12345


def tiny(x):
    return (x * 2.0 + 1.0).sum()


def x3():
    return lucid.placeholder((None, 3), name="x")


@pytest.fixture
def no_hang():
    """Fail instead of hanging (a FIFO opened for writing blocks until a reader comes)."""
    def stuck(*_):
        raise TimeoutError("the compile blocked")
    old = signal.signal(signal.SIGALRM, stuck)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def cache_name(program):
    """The file name the cache gives ``program``'s source."""
    return f"{cache._safe(program.name)}_{cache.digest(program.source)[:16]}{cache._SUFFIX}"


# ------------------------------------------------------------------ the code cache
def test_sources_stay_in_memory_by_default(monkeypatch):
    monkeypatch.delenv(cache.ENV_DIR, raising=False)
    program = lucid.compile(tiny, x3(), mode="eval")
    filename = program.step_fn.__code__.co_filename
    assert filename.startswith("<lucid:") and not os.path.exists(filename)
    linecache.checkcache()
    assert "".join(linecache.getlines(filename)) == program.source
    with pytest.raises(ValueError) as info:  # a traceback still shows the generated line
        program.step_fn(np.ones((2, 4), np.float32))
    frame = traceback.extract_tb(info.tb)[-1]
    assert frame.filename == filename and frame.line == \
        program.source.splitlines()[frame.lineno - 1].strip()


def test_save_writes_a_private_file(tmp_path):
    program = lucid.compile(tiny, x3(), mode="eval")
    program.save(tmp_path / "p.py")
    assert (tmp_path / "p.py").read_text() == program.source
    assert stat.S_IMODE(os.stat(tmp_path / "p.py").st_mode) == 0o600


def test_cache_dir_is_created_private_and_files_are_private(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv(cache.ENV_DIR, str(folder))
    program = lucid.compile(tiny, x3(), mode="eval")
    filename = program.step_fn.__code__.co_filename
    assert filename == str(folder / cache_name(program))
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(filename).st_mode) == 0o600
    assert open(filename).read() == program.source
    assert [p.name for p in folder.iterdir()] == [cache_name(program)]  # no temporaries left


def test_planted_symlinks_and_fifos_are_never_followed_nor_block(tmp_path, monkeypatch, no_hang):
    """Plant, as the same user, a symlink or a FIFO at every path the cache could use."""
    program = lucid.compile(tiny, x3(), mode="eval")
    folder, victim = tmp_path / "cache", tmp_path / "victim"
    folder.mkdir(mode=0o700)
    victim.write_text("precious")
    victim.chmod(0o600)
    tokens = [f"{i:016x}" for i in range(8)]  # every temporary name the cache will try
    monkeypatch.setattr(cache.secrets, "token_hex", lambda n: tokens.pop(0))
    name = cache_name(program)
    os.symlink(victim, folder / name)
    for i in range(8):
        tmp = folder / f".{name}.{i:016x}.tmp"
        os.symlink(victim, tmp) if i % 2 else os.mkfifo(tmp)
    monkeypatch.setenv(cache.ENV_DIR, str(folder))
    with pytest.raises(FileExistsError, match="fresh file"):  # every name taken: no write
        lucid.compile(tiny, x3(), mode="eval")
    assert victim.read_text() == "precious"
    assert os.path.islink(folder / name)

    tokens[:] = [f"{i:016x}" for i in range(8, 16)]  # free names: the link is replaced
    os.unlink(folder / name)
    os.mkfifo(folder / name)  # a FIFO at the final name: not read, not blocking
    again = lucid.compile(tiny, x3(), mode="eval")
    assert victim.read_text() == "precious"
    final = folder / name
    assert stat.S_ISREG(os.lstat(final).st_mode) and final.read_text() == program.source
    assert again.step_fn.__code__.co_filename == str(final)


@pytest.mark.parametrize("how", ["chown", "chmod 777", "chmod 770", "symlink", "file"])
def test_a_cache_dir_others_control_is_refused_without_writing(tmp_path, monkeypatch, how):
    folder = tmp_path / "cache"
    folder.mkdir(mode=0o700)
    if how == "chown":
        os.chown(folder, OTHER_UID, -1)
    elif how.startswith("chmod"):
        folder.chmod(int(how.split()[1], 8))
    elif how == "symlink":
        (tmp_path / "real").mkdir(mode=0o700)
        folder.rmdir()
        folder.symlink_to(tmp_path / "real")
    else:
        folder.rmdir()
        folder.write_text("")
    monkeypatch.setenv(cache.ENV_DIR, str(folder))
    with pytest.raises(cache.UnsafeCacheDir, match=str(folder)):
        lucid.compile(tiny, x3(), mode="eval")
    if folder.is_dir():
        assert list(folder.iterdir()) == []
    if how == "symlink":
        assert list((tmp_path / "real").iterdir()) == []


@pytest.mark.parametrize("plant", ["wrong text", "other owner", "world readable"])
def test_a_planted_file_is_replaced_not_used(tmp_path, monkeypatch, plant):
    program = lucid.compile(tiny, x3(), mode="eval")
    folder = tmp_path / "cache"
    folder.mkdir(mode=0o700)
    path = folder / cache_name(program)
    path.write_text("raise SystemExit('attacker')\n" if plant == "wrong text" else program.source)
    path.chmod(0o644 if plant == "world readable" else 0o600)
    if plant == "other owner":
        os.chown(path, OTHER_UID, -1)
    monkeypatch.setenv(cache.ENV_DIR, str(folder))
    again = lucid.compile(tiny, x3(), mode="eval")
    st = os.stat(path)
    assert path.read_text() == program.source
    assert st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) == 0o600
    assert "".join(linecache.getlines(again.step_fn.__code__.co_filename)) == program.source


def test_the_cache_keeps_to_its_size_bound_evicting_least_recently_used(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv(cache.ENV_DIR, str(folder))
    monkeypatch.setenv(cache.ENV_BYTES, "3000")
    names = []
    for k in range(8):
        program = lucid.compile(lambda x, k=k: (x * float(k + 2)).sum(), x3(), mode="eval")
        names.append(os.path.basename(program.step_fn.__code__.co_filename))
        sizes = [p.stat().st_size for p in folder.iterdir()]
        assert sum(sizes) <= 3000
    left = sorted(p.name for p in folder.iterdir())
    assert names[-1] in left and names[0] not in left and len(left) >= 2  # only what it must
    assert left == sorted(names[-len(left):])  # the oldest went first
