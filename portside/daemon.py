"""The daemon: a process with the command line already imported that forks one worker
per command (``portside daemon start|stop|status|run``).

Why a fork server rather than a server that answers lookups: a forked worker *is* the
command line, with the client's argv, environment, working directory, umask and
standard streams (received as file descriptors, see :mod:`portside.launcher`), so
every option, config file, credential source, exit code and terminal behaviour is the
one the in-process command has, with nothing re-implemented. The daemon itself never
runs a command, reads a credential or holds a token: it imports, forks and waits.

Rules it keeps:

- **Only its owner.** The socket lives in a directory only the user can enter
  (:func:`portside.launcher.private_problem`), and every peer's uid is checked again
  with ``SO_PEERCRED``.
- **Never stale.** Before each command it compares the modification times of its own
  code, of installed plugins' source files, of every directory on ``sys.path``
  (installing or removing a plugin changes one) and of the CA bundle with those it
  started with; on any change it refuses the command (which then runs in-process) and
  exits, so the next one starts fresh code.
- **One per installation.** The socket name is derived from the interpreter, the
  package's location and its version; a lock file keeps two daemons from racing.
- **Gone when idle**: after ``PORTSIDE_DAEMON_IDLE`` seconds (default 900) without a
  command, and on SIGTERM; it removes its socket on the way out.
- **Quiet log.** ``<socket>.log`` says when it started, stopped and why; it never
  records a command's arguments or environment (they may hold secrets).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import NoReturn

from portside import launcher
from portside.errors import DaemonUnavailable
from portside.launcher import (
    ANSWER_TIMEOUT,
    EXITED,
    GO,
    INFO,
    MAGIC,
    MAX_REQUEST,
    REFUSED,
    SIGNAL,
    STARTED,
    Request,
)

DEFAULT_IDLE = 900.0
# On the socket pair between the daemon and a spare:
READY = b"R"  # spare -> daemon: prepared, waiting for a command
COMMAND = b"C"  # daemon -> spare: a command (length, request; the client's socket attached)
_POLL = 1.0  # how often an idle daemon wakes to reap workers and check its idle time
SPARES = 2  # spares kept: two commands at once (or in a quick pair) both find one

# Imported before the first fork, so a worker starts with them loaded. What a command
# imports on first use and is not listed here is imported by each worker (correct,
# only slower).
PRELOAD = (
    "portside.cli",
    "portside.cache",
    "portside.images",
    "portside.check",
    "portside.pin",
    "portside.policy",
    "portside.report",
    "portside.discover",
    "portside.config",
    "portside.query",
    "portside.versions",
    "portside.schemes",
    "portside.registry.client",
    "portside.registry.credentials",
    "portside.registry.manifest",
    "portside.plugins",
    "ctypes",
    "httpx",
    "anyio",
    "anyio._backends._asyncio",
    "httpcore._backends.anyio",
    "argparse",
    "rich.console",
    "rich.table",
    "rich.text",
)


def idle_limit() -> float:
    text = os.environ.get("PORTSIDE_DAEMON_IDLE", "")
    try:
        value = float(text) if text else DEFAULT_IDLE
    except ValueError:
        value = DEFAULT_IDLE
    return value if value > 0 else DEFAULT_IDLE


# -- what the daemon watches --------------------------------------------------------


def _watched_files() -> Iterator[str]:
    package = os.path.dirname(os.path.abspath(launcher.__file__))
    for root, dirs, files in os.walk(package):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in files:
            if name.endswith(".py"):
                yield os.path.join(root, name)
    # Installing or removing a distribution changes its directory. Not sys.path[0]: the
    # daemon's working directory ("/", where it is started), which others change.
    for entry in sys.path[1:]:
        if entry and os.path.isdir(entry):
            yield entry
    yield from _plugin_sources()
    import ssl

    paths = ssl.get_default_verify_paths()
    for path in (paths.cafile, paths.capath):
        if path:
            yield path


_PLUGIN_FILES_MAX = 2000  # per plugin package: a command pays a stat for each


def _plugin_sources() -> Iterator[str]:
    """The source files of installed plugins' top-level packages. An editable install
    keeps them in the developer's tree, outside the directories watched above, and an
    editor saving in place changes no directory's modification time."""
    from portside.plugins import get_plugin_manager

    for plugin, _dist in get_plugin_manager().list_plugin_distinfo():
        name = getattr(plugin, "__name__", None) or type(plugin).__module__
        top = sys.modules.get(name.partition(".")[0])
        if top is None or getattr(top, "__file__", None) is None:
            continue
        if not hasattr(top, "__path__"):
            yield str(top.__file__)  # a plain module
            continue
        count = 0
        for directory in top.__path__:
            for root, dirs, files in os.walk(directory):
                dirs[:] = [d for d in dirs if d != "__pycache__"]
                for file in files:
                    if file.endswith(".py") and count < _PLUGIN_FILES_MAX:
                        count += 1
                        yield os.path.join(root, file)


def snapshot() -> dict[str, int]:
    """Modification times of everything whose change makes this daemon's code stale."""
    times: dict[str, int] = {}
    for path in _watched_files():
        try:
            times[path] = os.stat(path).st_mtime_ns
        except OSError:
            times[path] = -1
    return times


def _changed(before: dict[str, int]) -> str | None:
    now = snapshot()
    for path in sorted(before.keys() | now.keys()):
        if before.get(path) != now.get(path):
            return path
    return None


def preload() -> None:
    """Import what commands use and make what they make first (SSL context, plugins)."""
    import importlib

    for name in PRELOAD:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    import asyncio

    from portside.plugins import get_plugin_manager
    from portside.registry.transport import verifying_context

    verifying_context(None)  # the system CA store: 20-30 ms that no worker repeats
    get_plugin_manager()  # entry points of installed plugins, read once

    async def nothing() -> None:
        await asyncio.sleep(0)

    asyncio.run(nothing())  # asyncio's lazily made parts (policy, selector module)


# -- the server ---------------------------------------------------------------------


class Spare:
    """A worker forked ahead of a command: it prepares (warms up and rehearses, see
    :func:`_spare`), says so, and waits on a socket pair for a command.

    ``state``: ``preparing``, ``paused`` (preparing, stopped while a command runs) or
    ``ready``."""

    def __init__(self, pid: int, channel: socket.socket) -> None:
        self.pid = pid
        self.channel = channel
        self.state = "preparing"

    def pause(self, pause: bool) -> None:
        """Stop (or resume) its preparation: it must not take CPU from a command (on two
        cores: the command, its registry, a preparing spare)."""
        if self.state != ("preparing" if pause else "paused"):
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGSTOP if pause else signal.SIGCONT)
        self.state = "paused" if pause else "preparing"

    def usable(self) -> bool | None:
        """Whether it can take a command now; None when it died."""
        if self.state == "ready":
            return True
        if self.state == "paused":
            return False
        try:
            said = self.channel.recv(1, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return False  # still preparing
        except OSError:
            said = b""
        if said == READY:
            self.state = "ready"
            return True
        return None

    def hand(self, conn: socket.socket, payload: bytes) -> bool:
        """Give it the command (the client's socket attached); False if it died."""
        try:
            frame = COMMAND + len(payload).to_bytes(4, "big") + payload
            socket.send_fds(self.channel, [frame[:65536]], [conn.fileno()])
            if len(frame) > 65536:
                self.channel.sendall(frame[65536:])
            return True
        except OSError:
            return False
        finally:
            self.channel.close()

    def dismiss(self) -> None:
        """Let it go: it reads end-of-file and exits (resumed first if stopped)."""
        self.pause(False)
        self.channel.close()


class Daemon:
    """One listening socket, a loop of accept / check / fork."""

    def __init__(self, path: str, *, idle: float, log: Log, lock: int = -1) -> None:
        self.path = path
        self.lock = lock  # the lock file's descriptor: a worker must not hold the lock
        self.idle = idle
        self.log = log
        self.ident = launcher.identity()
        self.started = time.time()
        self.served = 0
        self.workers: set[int] = set()
        self.last_activity = time.monotonic()
        self.stopping: str | None = None
        self.code: dict[str, int] = {}
        self.listener: socket.socket | None = None
        self.pid = os.getpid()
        self.spares: list[Spare] = []  # see _dispatch
        # Signals' wake-up pipe (signal.set_wakeup_fd): the loop sleeps in select().
        self.woken, self.wake_up = socket.socketpair()
        for end in (self.woken, self.wake_up):
            end.setblocking(False)

    def serve(self) -> None:
        preload()
        self.code = snapshot()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)  # left by a daemon that died; the lock says none runs
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.setblocking(False)  # select() says when to accept
        self.listener = listener
        woken = self.woken
        signal.set_wakeup_fd(self.wake_up.fileno())
        signal.signal(signal.SIGCHLD, _child_ended)
        try:
            listener.bind(self.path)
            os.chmod(self.path, 0o600)
            listener.listen(64)
            self.log.write(f"serving on {self.path} (pid {os.getpid()})")
            while self.stopping is None:
                self._reap()
                now = time.monotonic()
                if now - self.last_activity > self.idle:
                    self.stop(f"idle for {self.idle:.0f} s")
                    break
                self._tend_spares()
                # Wake for a client, for a spare that says it is prepared and for a
                # worker's end (SIGCHLD, through the wake-up pipe): spares prepare only
                # while no command runs, and must resume as soon as none does.
                preparing = [s.channel for s in self.spares if s.state == "preparing"]
                readable, _, _ = select.select([listener, woken, *preparing], [], [], _POLL)
                if woken in readable:
                    with contextlib.suppress(BlockingIOError):
                        woken.recv(4096)
                for spare in list(self.spares):
                    if spare.channel in readable and spare.usable() is None:
                        self._drop(spare)  # it died
                if listener not in readable:
                    continue
                try:
                    conn, _ = listener.accept()
                except (BlockingIOError, InterruptedError):
                    continue  # the client gave up between select() and accept()
                with conn:
                    conn.setblocking(True)
                    self._handle(conn)
        finally:
            self._remove_socket()
            listener.close()
            for spare in self.spares:
                spare.dismiss()
            signal.set_wakeup_fd(-1)
            self.log.write(f"stopped: {self.stopping or 'error'}")

    def stop(self, why: str) -> None:
        self.stopping = why

    def _remove_socket(self) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self.path)

    def _running(self) -> int:
        """Commands running now (workers other than the spares)."""
        return len(self.workers - {spare.pid for spare in self.spares})

    def _tend_spares(self) -> None:
        """Keep ``SPARES`` spares, preparing only while no command runs (see _dispatch):
        fork replacements then, and stop those still preparing when one starts."""
        idle = self._running() == 0
        while idle and len(self.spares) < SPARES:
            spare = self._fork_spare()
            if spare is None:
                break  # out of processes or memory: commands fork their own
            self.spares.append(spare)
        for spare in self.spares:
            spare.pause(not idle)

    def _drop(self, spare: Spare) -> None:
        spare.dismiss()
        self.spares.remove(spare)

    def _reap(self) -> None:
        for pid in list(self.workers):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                self.workers.discard(pid)
                for spare in [s for s in self.spares if s.pid == pid]:
                    # A spare that died (killed, out of memory): forget it, without a
                    # signal to a pid that may be another process's by now.
                    spare.channel.close()
                    self.spares.remove(spare)

    # -- one connection ------------------------------------------------------------

    def _handle(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(ANSWER_TIMEOUT)
            if not _same_user(conn):
                return
            payload = _read_request(conn)
            if payload is None:
                return
            request = Request(payload)
            if request.ident != self.ident:
                conn.sendall(REFUSED + b"another installation of portside")
                return
            if request.kind == "status":
                conn.sendall(INFO + self.status().encode())
            elif request.kind == "stop":
                self.stop("asked to stop")
                conn.sendall(INFO + b"stopping")
            elif request.kind == "run":
                changed = _changed(self.code)
                if changed is not None:
                    # Out of the way first, so that the client's next start is not
                    # turned away by this daemon's lock or socket.
                    self.stop(f"code changed ({changed})")
                    self._remove_socket()
                    conn.sendall(REFUSED + b"code changed; restarting")
                    return
                self._dispatch(conn, payload, request)
            else:
                conn.sendall(REFUSED + b"bad request")
        except (OSError, ValueError) as exc:
            self.log.write(f"a request failed: {type(exc).__name__}")

    # -- workers -------------------------------------------------------------------
    #
    # A forked worker's first steps are slow: Python writes to nearly every page it
    # touches (reference counts, allocator pools), and each first write to a page shared
    # with the daemon copies it (~2,400 pages, ~13 ms, for a first `tags`), after the
    # fork itself (~3 ms). So the daemon keeps two spares, forked ahead and waiting on a
    # socket pair, that have paid for that already: each warms up and rehearses a whole
    # `tags` command against a registry of its own (portside.rehearsal, ~25 ms, ~250
    # faults left for a cold `tags`), then says it is ready. A command goes to a ready
    # spare, else (commands faster than spares prepare) to a worker forked for it.
    # Spares prepare only while no command runs: replacements are forked when the
    # command ends (SIGCHLD wakes the daemon), and one still preparing when a command
    # starts is stopped (SIGSTOP) until none runs; on two cores a preparing spare beside
    # a command, its client and its registry slowed the command. With two spares in
    # turn, commands run back to back still find one prepared. Measured with hyperfine,
    # cold `tags` back to back: 38-44 ms, against 47-51 ms when the replacement only
    # warmed up before the next command came and rehearsed after 50 ms without commands.

    def _dispatch(self, conn: socket.socket, payload: bytes, request: Request) -> None:
        for spare in list(self.spares):
            usable = spare.usable()
            if usable is False:
                continue
            self.spares.remove(spare)
            if usable is None:
                spare.dismiss()  # it died
            elif spare.hand(conn, payload):
                break
        else:
            self._fork(conn, request)
        self.served += 1
        self.last_activity = time.monotonic()  # only commands: a status poll is not use

    def _fork(self, conn: socket.socket, request: Request) -> None:
        pid = os.fork()
        if pid == 0:
            self._in_worker(lambda: _work(conn, request))
        self.workers.add(pid)

    def _fork_spare(self) -> Spare | None:
        """A new spare (it prepares in its own time), or None if none can be forked."""
        parent_end, child_end = socket.socketpair()
        try:
            pid = os.fork()
        except OSError as exc:
            parent_end.close()
            child_end.close()
            self.log.write(f"no spare worker: {exc.strerror}")
            return None
        if pid == 0:
            # First, before anything the daemon could stop it in: die with the daemon.
            # A daemon that is killed must not leave spares behind, waiting or stopped,
            # holding its descriptors.
            _die_with_parent(True)
            if os.getppid() != self.pid:
                os._exit(0)  # it died already
            parent_end.close()
            self._in_worker(lambda: _spare(child_end))
        child_end.close()
        self.workers.add(pid)
        return Spare(pid, parent_end)

    def _in_worker(self, run: Callable[[], int]) -> NoReturn:
        """The forked side: run, log what broke the worker itself, never return."""
        self.log.echo = False  # a worker's stderr becomes the client's
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        self.woken.close()
        self.wake_up.close()
        if self.lock >= 0:
            os.close(self.lock)  # else a long command keeps the next daemon from starting
        if self.listener is not None:
            self.listener.close()
        for spare in self.spares:
            spare.channel.close()
        code = 1
        try:
            code = run()
        except BaseException as exc:
            # Where a worker's own machinery failed (cli.main catches the command's
            # errors): the type and the place, not the message, which may hold
            # anything the command was given.
            import traceback

            where = traceback.extract_tb(exc.__traceback__)[-1:]
            place = f" at {where[0].filename}:{where[0].lineno}" if where else ""
            self.log.write(f"worker failed: {type(exc).__name__}{place}")
        finally:
            os._exit(code)

    def status(self) -> str:
        self._reap()
        from portside import __version__

        age = time.time() - self.started
        for spare in self.spares:
            spare.usable()  # it may have said it is ready
        spares = ", ".join(spare.state for spare in self.spares) or "none"
        return (
            f"pid: {os.getpid()}\n"
            f"socket: {self.path}\n"
            f"version: {__version__}\n"
            f"running for: {age:.0f} s\n"
            f"commands served: {self.served}\n"
            f"commands running: {self._running()}\n"
            f"spare workers: {spares}\n"
            f"stops after: {self.idle:.0f} s idle\n"
            f"log: {self.log.path}\n"
        )


def _child_ended(signum: int, frame: object) -> None:
    """SIGCHLD: nothing to do here; the signal's byte on the wake-up pipe wakes the loop."""


def _same_user(conn: socket.socket) -> bool:
    import struct

    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return bool(uid == os.getuid())


def _read_request(conn: socket.socket) -> bytes | None:
    """The request's payload (see :func:`portside.launcher.encode_request`), or None."""
    data = b""
    while len(data) < 8:
        chunk = conn.recv(8 - len(data))
        if not chunk:
            return None
        data += chunk
    if data[:4] != MAGIC:
        return None
    size = int.from_bytes(data[4:8], "big")
    if size > MAX_REQUEST:
        conn.sendall(REFUSED + b"request too large")
        return None
    payload = bytearray()
    while len(payload) < size:
        chunk = conn.recv(min(65536, size - len(payload)))
        if not chunk:
            return None
        payload += chunk
    return bytes(payload)


# -- the worker ---------------------------------------------------------------------


def _spare(channel: socket.socket) -> int:
    """Prepare (warm up, rehearse) and say so; then wait for a command and run it."""
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)  # replaced by the client's before a command runs
    os.close(devnull)
    from portside.rehearsal import rehearse, warm_up

    _quietly(warm_up)
    _quietly(rehearse)
    try:
        channel.sendall(READY)
        data, fds, _flags, _addr = socket.recv_fds(channel, 65536, 1)
    except OSError:
        return 0  # the daemon let it go while it prepared
    if data[:1] != COMMAND or len(data) < 5 or len(fds) != 1:
        for fd in fds:
            os.close(fd)
        return 0  # the daemon stopped
    size = int.from_bytes(data[1:5], "big")
    payload = bytearray(data[5:])
    while len(payload) < size:
        chunk = channel.recv(min(65536, size - len(payload)))
        if not chunk:
            return 0
        payload += chunk
    channel.close()
    return _work(socket.socket(fileno=fds[0]), Request(bytes(payload)))


def _quietly(step: Callable[[], object]) -> None:
    """A spare's preparation: a failure leaves a slower spare, no more."""
    with contextlib.suppress(Exception):
        step()


def _die_with_parent(die: bool) -> None:
    """Linux's PR_SET_PDEATHSIG: SIGKILL this process when its parent (the daemon) dies,
    or (``die=False``) no longer. ctypes is imported by the daemon (:func:`preload`)."""
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGKILL if die else 0, 0, 0, 0)


def _work(conn: socket.socket, request: Request) -> int:
    """Become the client's command, run it, report its exit code."""
    _die_with_parent(False)  # a command runs to its end, whatever becomes of the daemon
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGCHLD):
        signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    conn.settimeout(ANSWER_TIMEOUT)
    unmatched = _take_on_callers_limits(conn)
    if unmatched is not None:
        conn.sendall(REFUSED + f"cannot match the caller's {unmatched}".encode())
        return 0  # the client runs the command itself, under its own limits
    conn.sendall(STARTED)
    # The go-ahead brings the client's standard streams (see launcher.run_in_daemon).
    go, fds, _flags, _addr = socket.recv_fds(conn, 1, 3)
    if go != GO or len(fds) != 3:
        for fd in fds:
            os.close(fd)
        return 0  # the client gave up waiting and runs the command itself
    conn.settimeout(None)
    for target, fd in zip((0, 1, 2), fds, strict=True):
        os.dup2(fd, target)
    for fd in fds:
        if fd > 2:
            os.close(fd)
    os.environ.clear()
    os.environ.update(request.environ)
    time.tzset()
    os.umask(request.umask)
    _become_streams(request.streams)
    if "random" in sys.modules:
        sys.modules["random"].seed()  # forked workers must not share a sequence
    try:
        os.chdir(request.cwd)
    except OSError as exc:
        sys.stderr.write(f"portside: error: the working directory is gone: {exc.strerror}\n")
        conn.sendall(EXITED + bytes([1]))
        return 1
    sys.argv = ["portside", *request.argv]
    main_thread = threading.get_ident()
    threading.Thread(target=_relay_signals, args=(conn, main_thread), daemon=True).start()

    from portside.cli import main

    code = 1
    try:
        code = main(request.argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except KeyboardInterrupt:
        code = 130
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
    # Done: the client closing the connection after our exit code is not a Ctrl-C.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    code &= 0xFF
    with contextlib.suppress(OSError):
        conn.sendall(EXITED + bytes([code]))
    return code


# Every limit `ulimit` sets (those this platform has): a command must hit the caller's
# limits, not the daemon's, whichever process runs it.
_LIMITS = (
    "RLIMIT_AS", "RLIMIT_CORE", "RLIMIT_CPU", "RLIMIT_DATA", "RLIMIT_FSIZE", "RLIMIT_LOCKS",
    "RLIMIT_MEMLOCK", "RLIMIT_MSGQUEUE", "RLIMIT_NICE", "RLIMIT_NOFILE", "RLIMIT_NPROC",
    "RLIMIT_RSS", "RLIMIT_RTPRIO", "RLIMIT_RTTIME", "RLIMIT_SIGPENDING", "RLIMIT_STACK",
)  # fmt: skip


def _take_on_callers_limits(conn: socket.socket) -> str | None:
    """Give this worker the resource limits and the nice value of the process at the
    other end of ``conn`` (read with prlimit, allowed between processes of one user).
    None when done; else the name of what could not be matched: a limit above this
    worker's hard limit, a nice value below its own, need privileges it does not have.
    (Its cgroup stays the daemon's: moving it needs write access to the caller's.)"""
    import resource
    import struct

    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    caller = struct.unpack("3i", creds)[0]
    for name in _LIMITS:
        which = getattr(resource, name, None)
        if which is None:
            continue
        try:
            wanted = resource.prlimit(caller, which)
            if resource.getrlimit(which) != wanted:
                resource.setrlimit(which, wanted)
        except (OSError, ValueError):
            return name.removeprefix("RLIMIT_").lower() + " limit"
    try:
        nice = os.getpriority(os.PRIO_PROCESS, caller)
        if os.getpriority(os.PRIO_PROCESS, 0) != nice:
            os.setpriority(os.PRIO_PROCESS, 0, nice)
    except OSError:
        return "nice value"
    return None


def _become_streams(streams: Sequence[str]) -> None:
    """Text streams over the client's descriptors, with the client's encodings."""
    in_enc, in_err, out_enc, out_err, err_enc, err_err = streams
    sys.stdin = open(  # noqa: SIM115 - they live as long as the worker
        0, encoding=in_enc, errors=in_err, closefd=False
    )
    # buffering=1: line-buffered, as Python makes a terminal's stdout (and any stderr).
    sys.stdout = open(  # noqa: SIM115
        1, "w", buffering=1 if os.isatty(1) else -1, encoding=out_enc, errors=out_err, closefd=False
    )
    sys.stderr = open(  # noqa: SIM115
        2, "w", buffering=1, encoding=err_enc, errors=err_err, closefd=False
    )


def _relay_signals(conn: socket.socket, main_thread: int) -> None:
    """Signals the client relays are raised in the worker's main thread; a client that
    disappears (killed) interrupts the worker the way Ctrl-C would."""
    while True:
        try:
            message = conn.recv(2)
            if message[:1] == SIGNAL and len(message) == 1:
                message += conn.recv(1)
        except OSError:
            return
        if not message:
            signal.pthread_kill(main_thread, signal.SIGINT)
            return
        if message[:1] == SIGNAL and len(message) == 2:
            signal.pthread_kill(main_thread, message[1])


# -- the log ------------------------------------------------------------------------


class Log:
    """A few lines about the daemon's life; never a command's arguments or environment."""

    MAX_BYTES = 256 * 1024

    def __init__(self, path: str | None, *, echo: bool = False) -> None:
        self.path = path or "-"
        self.echo = echo
        self.file = None
        if path is not None:
            with contextlib.suppress(OSError):
                if os.path.getsize(path) > self.MAX_BYTES:
                    os.unlink(path)
            with contextlib.suppress(OSError):
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                self.file = os.fdopen(fd, "a", encoding="utf-8")

    def write(self, line: str) -> None:
        text = f"{time.strftime('%Y-%m-%d %H:%M:%S')} pid {os.getpid()}: {line}\n"
        if self.file is not None:
            with contextlib.suppress(OSError):
                self.file.write(text)
                self.file.flush()
        if self.echo:
            sys.stderr.write(text)
            sys.stderr.flush()  # nothing left in the buffer for a forked worker to repeat


# -- starting, stopping, status -----------------------------------------------------


def run_foreground(*, idle: float, echo: bool) -> int:
    """Serve in this process until idle, stopped or signalled. 0, or 1 if one already runs."""
    import fcntl

    path = launcher.prepare_runtime_dir()
    # The record of when the last command started (launcher._after_a_pause).
    with contextlib.suppress(OSError):
        os.close(os.open(launcher.last_command_marker(), os.O_WRONLY | os.O_CREAT, 0o600))
    lock = os.open(path + ".lock", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(lock)
        return 1  # another daemon of this installation has it
    log = Log(path + ".log", echo=echo)
    daemon = Daemon(path, idle=idle, log=log, lock=lock)

    def on_signal(signum: int, frame: object) -> None:
        daemon.stop(f"signal {signal.Signals(signum).name}")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    try:
        daemon.serve()
    except OSError as exc:  # the socket could not be made: say so where one will look
        log.write(f"could not serve: {exc.strerror or type(exc).__name__} ({path})")
        return 2
    finally:
        os.close(lock)
    return 0


def stop_running(timeout: float = 10.0) -> bool:
    """Ask the daemon to stop and wait until its socket is gone; False if none ran."""
    path = launcher.socket_path()
    answer = launcher.ask("stop", path=path)
    if answer is None:
        return False
    deadline = time.monotonic() + timeout
    while os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.02)
    return True


USAGE = """\
usage: portside daemon {start,stop,status,run}

Keep a process with portside loaded, so that commands do not pay Python's imports
(about 170 ms before the first request to a registry). Commands use it whenever it
runs; with PORTSIDE_DAEMON=auto (the default) one is started after a command that had
to go to a registry, unless CI is set.

  start    start it in the background (no-op if it runs)
  stop     stop it
  status   say whether it runs, and what it has done (exit 1 if it does not run)
  run      serve in the foreground, logging to stderr (for debugging)

environment:
  PORTSIDE_DAEMON=auto|on|off   use it (auto: and start it when useful; on: always)
  PORTSIDE_DAEMON_IDLE=SECONDS  stop after this long without a command (default 900)
  PORTSIDE_RUNTIME_DIR=DIR      where its socket lives (default $XDG_RUNTIME_DIR/portside
                                or /tmp/portside-UID; must be private to the user)
"""


def main(argv: Sequence[str]) -> int:
    """``portside daemon ...``."""
    args = list(argv)
    if not args or args[0] in ("-h", "--help", "help"):
        sys.stdout.write(USAGE)
        return 0 if args else 2
    action, rest = args[0], args[1:]
    if rest:
        sys.stderr.write(f"portside: error: unexpected argument {rest[0]!r}\n")
        return 2
    try:
        if action == "start":
            was = launcher.daemon_status()
            path = launcher.ensure_running()
            status = launcher.daemon_status(path) or ""
            pid = status.partition("\n")[0]
            sys.stdout.write(f"portside daemon: {'running' if was else 'started'} ({pid})\n")
            return 0
        if action == "stop":
            stopped = stop_running()
            sys.stdout.write(
                "portside daemon: stopped\n" if stopped else "portside daemon: not running\n"
            )
            return 0
        if action == "status":
            shown = launcher.daemon_status()
            if shown is None:
                sys.stdout.write("portside daemon: not running\n")
                return 1
            sys.stdout.write("portside daemon: running\n" + shown)
            return 0
        if action == "run":
            if run_foreground(idle=idle_limit(), echo=True) == 1:
                sys.stderr.write("portside: error: a daemon of this installation already runs\n")
                return 1
            return 0
    except DaemonUnavailable as exc:
        sys.stderr.write(f"portside: error: {exc.message}\n")
        if exc.hint:
            sys.stderr.write(f"portside: hint: {exc.hint}\n")
        return exc.exit_code
    sys.stderr.write(f"portside: error: unknown daemon action {action!r}\n{USAGE}")
    return 2


if __name__ == "__main__":
    # Started by launcher.spawn_daemon: no terminal, no output; the log says the rest.
    try:
        code = run_foreground(idle=idle_limit(), echo=False)
    except DaemonUnavailable:
        code = 2
    raise SystemExit(0 if code == 1 else code)
