"""Private state on disk: directories and files only this user may have written.

Portside keeps answers from private registries (tag lists, manifests, labels) and a
secret key under the cache directory. Another local user who owns that directory, a
symbolic link to it, or a file in it, or who can write there, could read those answers
or plant ones the next command serves and pins. So a directory that holds private state
must be ours and writable by nobody else, and a file read from it must be ours too; a
check that fails means "do not use this", never "fix it behind the user's back".

Only ``os`` and ``stat`` are imported: these checks run on every warm command.
"""

from __future__ import annotations

import os
import stat

# Group- or other-writable: someone besides us could add, replace or remove entries.
_WRITABLE_BY_OTHERS = stat.S_IWGRP | stat.S_IWOTH


def _owner(uid: int) -> str:
    try:
        import pwd  # only for the message: the name says more than a number

        return f"{pwd.getpwuid(uid).pw_name!r} (uid {uid})"
    except (ImportError, KeyError):
        return f"uid {uid}"


def directory_problem(path: str) -> str | None:
    """Why ``path`` cannot hold private state, or ``None`` when it can (or is absent).

    ``path`` must be a directory owned by the effective user and writable by nobody
    else. A symbolic link is followed only when it is ours as well (one planted in a
    shared directory such as ``/tmp`` is not), and then its target is held to the same
    rules. The parent must not let others swap the directory: writable by others is
    refused unless it is sticky (as ``/tmp`` is).
    """
    if not hasattr(os, "geteuid"):
        return None  # no POSIX owners to check (Windows): the user's profile protects it
    uid = os.geteuid()
    try:
        st = os.lstat(path)
    except OSError:
        return None  # absent or unreachable: nothing to trust, and nothing read from it
    if stat.S_ISLNK(st.st_mode):
        if st.st_uid != uid:
            return f"{path} is a symbolic link owned by {_owner(st.st_uid)}"
        try:
            st = os.stat(path)
        except OSError:
            return None  # a dangling link of ours: unusable, not untrusted
    if not stat.S_ISDIR(st.st_mode):
        return None  # not a directory: every use fails, which is not a trust problem
    if st.st_uid != uid:
        return f"{path} belongs to {_owner(st.st_uid)}"
    if st.st_mode & _WRITABLE_BY_OTHERS:
        return f"{path} is writable by other users (mode {stat.S_IMODE(st.st_mode):04o})"
    parent = os.path.dirname(os.path.abspath(path))
    try:
        pst = os.stat(parent)
    except OSError:
        return None
    swappable = pst.st_mode & _WRITABLE_BY_OTHERS and not pst.st_mode & stat.S_ISVTX
    if swappable and (pst.st_uid != uid or pst.st_mode & stat.S_IWOTH):
        return f"{parent} (holding {path}) is writable by other users and not sticky"
    return None


def ensure_directory(path: str) -> str | None:
    """Create ``path`` (mode 0700) if absent, then check it; the problem, or ``None``.

    Raises ``OSError`` when it cannot be created (a read-only disk, a file in the way).
    """
    problem = directory_problem(path)
    if problem is not None:
        return problem
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    import contextlib  # only when writing: not worth ~1 ms on every warm read

    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    # Checked again after creating: someone may have made it between the two calls.
    return directory_problem(path)


def file_problem(fd: int) -> str | None:
    """Why the open file ``fd`` cannot be trusted as our own state, or ``None``."""
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    if not hasattr(os, "geteuid"):
        return None
    if st.st_uid != os.geteuid():
        return f"owned by {_owner(st.st_uid)}"
    if st.st_mode & _WRITABLE_BY_OTHERS:
        return f"writable by other users (mode {stat.S_IMODE(st.st_mode):04o})"
    return None


def read_file(path: str) -> bytes | None:
    """The bytes of ``path`` if it is a regular file of ours that only we can write.

    ``None`` when it is absent or unreadable; raises :class:`UntrustedFile` when it
    exists but is not ours to trust. A symbolic link is never followed.
    """
    try:
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(path, flags)
    except OSError as exc:
        import errno

        if exc.errno == errno.ELOOP:
            raise UntrustedFile(f"{path} is a symbolic link") from None
        return None
    try:
        problem = file_problem(fd)
        if problem is not None:
            raise UntrustedFile(f"{path} is {problem}")
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read()
    except OSError:
        return None
    finally:
        os.close(fd)


class UntrustedFile(Exception):
    """A file that exists where our private state lives but is not ours to trust."""
