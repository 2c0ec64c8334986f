"""Where generated source lives: in memory, and on disk only in a private, checked folder.

By default a program's source never touches the disk. It is compiled under a
pseudo file name (``<lucid:step_train_1a2b3c4d5e6f>``) whose lines are put into
:mod:`linecache` without a modification time, so :mod:`traceback`, :mod:`pdb`
and :func:`inspect.getsource` show the generated lines, and no other user can
plant, read or swap them. ``program.save(path)`` writes a copy on request.

Tools that open files by path (IDE debuggers, coverage) can have one:
``LUCID_CACHE_DIR`` names a folder that lucid creates with mode 0700 and then
checks on every use (a directory, not a link, owned by this user, writable by no
one else; else :class:`UnsafeCacheDir`, naming the path). Files in it are
created with ``O_CREAT | O_EXCL | O_NOFOLLOW`` under a random name, mode 0600,
and renamed into place; a file already there is used only if it is a regular
file of ours whose content hash matches. The folder holds at most
``LUCID_CACHE_BYTES`` (16 MB by default); the least recently used files go first.
"""
from __future__ import annotations

import hashlib
import linecache
import os
import secrets
import stat

ENV_DIR, ENV_BYTES = "LUCID_CACHE_DIR", "LUCID_CACHE_BYTES"
DEFAULT_BYTES = 16 * 2**20
_SUFFIX = ".lucid.py"


class UnsafeCacheDir(PermissionError):
    """The cache folder is not private to this user; nothing was written to it."""


def digest(source):
    return hashlib.sha256(source.encode("utf-8")).hexdigest()


def filename_for(source, name):
    """The file name to compile ``source`` under, registered with :mod:`linecache`.

    In memory (the default) a pseudo name; with ``LUCID_CACHE_DIR``, a real
    file written safely into that private folder.
    """
    stem = f"{_safe(name)}_{digest(source)[:16]}"
    folder = os.environ.get(ENV_DIR)
    filename = f"<lucid:{stem}>" if not folder else store(folder, stem + _SUFFIX, source)
    # mtime None: linecache.checkcache never drops or re-reads the entry, so tracebacks
    # show exactly the source that was compiled, whatever happens to any file.
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    return filename


def open_private_dir(folder):
    """Create ``folder`` (mode 0700) if needed and return an fd of it, checked private."""
    folder = os.path.abspath(folder)
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
    except FileExistsError:
        pass  # a non-directory is there: refused below
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as e:
        raise UnsafeCacheDir(f"lucid cache {folder!r} is not a directory of its own "
                             f"(a link or a file?): {e.strerror}") from None
    st = os.fstat(fd)
    problem = ("is owned by another user (uid %d)" % st.st_uid if st.st_uid != os.geteuid()
               else "is writable by other users" if st.st_mode & 0o022 else None)
    if problem:
        os.close(fd)
        raise UnsafeCacheDir(f"lucid cache {folder!r} {problem}; refusing to use it "
                             f"(make it yours with mode 0700, or set {ENV_DIR})")
    return fd


def store(folder, name, source):
    """Put ``source`` in private ``folder`` as ``name``; return the file's path."""
    fd = open_private_dir(folder)
    try:
        if not _ours(fd, name, digest(source)):
            _write(fd, name, source)
        _evict(fd, keep=name)
    finally:
        os.close(fd)
    return os.path.join(os.path.abspath(folder), name)


def _ours(dir_fd, name, want):
    """Whether ``name`` is a regular file of this user's, private, holding the right text.

    Opened without following links and without blocking (a FIFO would hang a read).
    """
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
    except OSError:
        return False
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o077:
            return False
        with os.fdopen(os.dup(fd), "rb") as f:
            ok = hashlib.sha256(f.read()).hexdigest() == want
        if ok:
            os.utime(fd)  # recently used: evicted last
        return ok
    finally:
        os.close(fd)


def _write(dir_fd, name, source):
    for _ in range(8):  # a name someone planted is skipped, never followed or opened
        tmp = f".{name}.{secrets.token_hex(8)}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600,
                         dir_fd=dir_fd)
        except FileExistsError:
            continue
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(source)
            # rename replaces whatever directory entry is there (a link or FIFO included)
            os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            _unlink(dir_fd, tmp)
            raise
        return
    raise FileExistsError(f"could not create a fresh file for {name!r} in the lucid cache")


def _evict(dir_fd, keep):
    """Delete least recently used sources of ours until the folder fits its byte budget."""
    budget = int(os.environ.get(ENV_BYTES, DEFAULT_BYTES))
    files, total = [], 0
    for entry in os.scandir(dir_fd):
        if entry.name.endswith(_SUFFIX):
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid():
                total += st.st_size
                if entry.name != keep:  # the file just used stays, whatever its size
                    files.append((st.st_mtime, st.st_size, entry.name))
    for _, size, name in sorted(files):
        if total <= budget:
            break
        _unlink(dir_fd, name)
        total -= size


def _unlink(dir_fd, name):
    try:
        os.unlink(name, dir_fd=dir_fd)
    except OSError:
        pass


def _safe(name):
    return "".join(c if c.isascii() and c.isalnum() else "_" for c in name)[:40] or "program"
