"""The ``portside`` command's entry point: hand the command to the daemon, or run it here.

A Python process pays for its imports before it can answer: asyncio, httpx and the
registry client cost ~170 ms here, five times what skopeo needs for the whole answer.
The daemon (:mod:`portside.daemon`) pays once: it is a process with everything
imported that forks one worker per command. This module is the other end: it sends
the worker this process's argv, environment, working directory, umask and its
standard streams themselves (the file descriptors, over the unix socket), so the
worker runs exactly the command that was typed, writing to the same terminal or pipe,
and this process only relays signals and exits with the worker's exit code.

Whatever goes wrong on the way (no daemon, a daemon of another version or with stale
code, a daemon that does not answer) the command runs here instead, as it would
without a daemon: the daemon can make a command faster, never different.

This module runs before anything else and is kept to what the interpreter has loaded
already plus ``_socket``: no ``socket`` (it imports ``enum``), no ``signal``, no
``json``, no ``re``.

``PORTSIDE_DAEMON``:

- ``auto`` (default): use a running daemon; after a command that had to go to the
  network here, start one in the background for the next command (not when ``CI`` is
  set: a job's steps should not leave processes behind);
- ``on``: start the daemon if it is not running, wait for it, use it;
- ``off``: never use or start one.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from _socket import socket
    from collections.abc import Sequence
    from types import FrameType

# Verbs the daemon serves: short lookups. ``lsp`` (a long-lived server), ``build``,
# ``push`` and ``publish`` (long jobs driving other programs) and ``daemon`` itself run
# in the process that was started for them.
SERVED_VERBS = frozenset({"tags", "inspect", "digest", "check", "pin", "query", "latest"})
# Verbs whose answer may come from the cache alone, tried here first (see main).
CACHE_VERBS = frozenset({"tags", "inspect", "digest"})

MAGIC = b"PSD1"
MAX_REQUEST = 1 << 20  # argv and environment; a real one is a few kB
# How long to wait for the daemon's first byte. It answers in well under a millisecond;
# anything this slow is a daemon in trouble, and the command runs here instead.
ANSWER_TIMEOUT = 3.0
# Signals a person or a job controller sends to the command; relayed to the worker.
_RELAYED = (2, 15, 1, 3)  # SIGINT, SIGTERM, SIGHUP, SIGQUIT (the same on every Linux)

# One byte starts each message on the socket.
STARTED = b"S"  # worker -> client: forked, waiting for the go-ahead
GO = b"G"  # client -> worker: still here, run it
REFUSED = b"R"  # daemon -> client: not served (text follows); run the command here
EXITED = b"E"  # worker -> client: one byte of exit code follows
SIGNAL = b"K"  # client -> worker: one byte of signal number follows
INFO = b"I"  # daemon -> client: status text follows


def mode() -> str:
    """``auto``, ``on`` or ``off`` from ``PORTSIDE_DAEMON`` (anything unknown: ``off``).

    Always ``off`` where the daemon cannot be what it promises: off Linux (it relies on
    ``SO_PEERCRED`` and on forking a process that has imported everything), and when
    this interpreter was started with options (``-X importtime``, ``-W error``), which
    apply to this process only."""
    if sys.platform != "linux" or sys.warnoptions or sys._xoptions:
        return "off"
    value = os.environ.get("PORTSIDE_DAEMON", "auto").strip().lower() or "auto"
    if value in ("auto", "on", "off"):
        return value
    if value in ("1", "yes", "true"):
        return "on"
    return "off"


def identity() -> str:
    """Which installation this is: a daemon serves only clients of its own.

    The interpreter, the package and its version, and what decides the import path: a
    different PYTHONPATH, user site or ``-s``/``-I`` means other code (plugins) may be
    imported, so another daemon. (Not ``sys.path`` itself: its first entry is the
    script's or working directory, and site skips a ``.pth`` entry equal to it.)"""
    from portside import __version__

    package = os.path.dirname(os.path.abspath(__file__))
    flags = sys.flags
    imports = [
        *(os.environ.get(k, "") for k in ("PYTHONPATH", "PYTHONHOME", "PYTHONUSERBASE")),
        f"{flags.isolated}{flags.ignore_environment}{flags.no_user_site}{flags.no_site}",
    ]
    # Newlines between the parts: the request that carries this separates fields by NUL.
    return "\n".join([os.path.realpath(sys.executable), package, __version__, *imports])


def _fnv1a(data: bytes) -> str:
    # A stable short name for the socket (hashlib would cost ~3 ms here).
    value = 0xCBF29CE484222325
    for byte in data:
        value = ((value ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{value:016x}"


def runtime_dir() -> str:
    """``$PORTSIDE_RUNTIME_DIR``, else ``$XDG_RUNTIME_DIR/portside``, else
    ``/tmp/portside-<uid>`` (tmux's rule): short enough for a socket path."""
    explicit = os.environ.get("PORTSIDE_RUNTIME_DIR")
    if explicit:
        return os.path.abspath(explicit)
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and os.path.isabs(xdg):
        return os.path.join(xdg, "portside")
    return os.path.join("/tmp", f"portside-{os.getuid()}")  # noqa: S108 - checked private


def socket_path(ident: str | None = None) -> str:
    name = _fnv1a((ident or identity()).encode("utf-8", "surrogateescape"))
    return os.path.join(runtime_dir(), f"d-{name}.sock")


def private_problem(directory: str) -> str | None:
    """Why ``directory`` is not ours alone (the socket's guard), or None if it is."""
    try:
        st = os.stat(directory)
    except OSError as exc:
        return f"cannot use {directory}: {exc.strerror}"
    if st.st_uid != os.getuid():
        return f"{directory} belongs to another user"
    if st.st_mode & 0o077:
        return f"{directory} is open to other users (mode {st.st_mode & 0o777:o})"
    return None


def _unavailable(problem: str) -> None:
    from portside.errors import DaemonUnavailable

    raise DaemonUnavailable(
        problem, hint="set PORTSIDE_RUNTIME_DIR to a directory only you can use"
    )


# -- the request -------------------------------------------------------------------


def encode_request(kind: str, argv: Sequence[str]) -> bytes:
    """This process's command as one frame: ``MAGIC``, a 4-byte length, NUL-separated
    fields (kind, identity, cwd, umask, stream encodings, argv, environment)."""
    umask = os.umask(0)
    os.umask(umask)
    cwd = os.getcwd()  # OSError (a deleted directory): the command runs here and says so
    streams = []
    for stream in (sys.stdin, sys.stdout, sys.stderr):
        streams.append(getattr(stream, "encoding", None) or "utf-8")
        streams.append(getattr(stream, "errors", None) or "strict")
    fields = [kind, identity(), cwd, str(umask), *streams, str(len(argv)), *argv]
    fields += [f"{k}={v}" for k, v in os.environ.items()]
    payload = b"\0".join(os.fsencode(f) for f in fields)
    return MAGIC + len(payload).to_bytes(4, "big") + payload


class Request:
    """A decoded request (the daemon's side of :func:`encode_request`)."""

    __slots__ = ("argv", "cwd", "environ", "ident", "kind", "streams", "umask")

    def __init__(self, payload: bytes) -> None:
        fields = [os.fsdecode(f) for f in payload.split(b"\0")]
        if len(fields) < 11:
            raise ValueError("truncated request")
        self.kind, self.ident, self.cwd = fields[0], fields[1], fields[2]
        self.umask = int(fields[3]) & 0o777
        self.streams = tuple(fields[4:10])
        count = int(fields[10])
        if count < 0 or 11 + count > len(fields):
            raise ValueError("bad argument count")
        self.argv = fields[11 : 11 + count]
        environ = {}
        for item in fields[11 + count :]:
            key, eq, value = item.partition("=")
            if eq and key:
                environ[key] = value
        self.environ = environ


# -- the client --------------------------------------------------------------------


def _connect(path: str) -> socket | None:
    import _socket

    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError:
        sock.close()
        return None
    return sock


def _recv_exact(sock: socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def ask(kind: str, argv: Sequence[str] = (), *, path: str | None = None) -> bytes | None:
    """Send a control request (``status``, ``stop``); the answer, or None if no daemon."""
    sock = _connect(path or socket_path())
    if sock is None:
        return None
    try:
        sock.settimeout(ANSWER_TIMEOUT)
        sock.sendall(encode_request(kind, argv))
        answer = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return answer
            answer += chunk
    except OSError:
        return None
    finally:
        sock.close()


def run_in_daemon(argv: Sequence[str], path: str) -> int | None:
    """Run the command in the daemon at ``path``: its exit code, or None when it is not
    served (nothing has run; the caller runs it here)."""
    import _socket

    sock = _connect(path)
    if sock is None:
        return None
    try:
        sock.settimeout(ANSWER_TIMEOUT)
        sock.sendall(encode_request("run", argv))
        first = _recv_exact(sock, 1)
        if first != STARTED:
            return None  # refused (stale code, another version) or gone
        # Only now the streams: descriptors sent earlier would sit in the queue of a
        # daemon that never reads them, keeping our pipes open (their readers would
        # wait for an end of file) for as long as that daemon lives. And the worker
        # waits for this go-ahead: had we given up on it, it would not run.
        rights = b"".join(fd.to_bytes(4, sys.byteorder) for fd in (0, 1, 2))
        sock.sendmsg([GO], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, rights)])
        sock.settimeout(None)
    except OSError:
        sock.close()
        return None
    return _wait_for_worker(sock)


def _wait_for_worker(sock: socket) -> int:
    """Relay signals to the worker until it reports its exit code; that code."""
    import _signal  # type: ignore[import-not-found]  # signal.py imports enum (~3 ms)

    relayed: list[int] = []

    def relay(signum: int, frame: FrameType | None) -> None:
        relayed.append(signum)
        try:  # noqa: SIM105 - contextlib is an import this module does without
            sock.sendall(SIGNAL + bytes([signum]))
        except OSError:
            pass

    for signum in _RELAYED:
        try:  # noqa: SIM105
            _signal.signal(signum, relay)
        except (OSError, ValueError):
            pass
    try:
        message = _recv_exact(sock, 2)
    finally:
        sock.close()
    if len(message) == 2 and message[:1] == EXITED:
        return message[1]
    # The worker ended without a word: killed by a signal.
    if relayed:
        return 128 + relayed[-1]
    sys.stderr.write("portside: error: the daemon's worker ended without an exit code\n")
    sys.stderr.write("portside: hint: rerun with PORTSIDE_DAEMON=off to run it in-process\n")
    return 1


# -- starting the daemon ------------------------------------------------------------


# What the daemon process itself is given of the environment that starts it: what
# Python needs to import the same code the same way, and where things live. Nothing
# else: the command that happens to start it may carry credentials
# (PORTSIDE_PASSWORD, DOCKER_AUTH_CONFIG, cloud tokens), and the daemon outlives that
# command. Each worker gets its own command's whole environment instead.
_DAEMON_ENVIRONMENT = frozenset(
    {
        "PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR",
        "VIRTUAL_ENV", "XDG_RUNTIME_DIR", "XDG_CACHE_HOME", "SSL_CERT_FILE", "SSL_CERT_DIR",
        "PORTSIDE_RUNTIME_DIR", "PORTSIDE_DAEMON_IDLE",
    }
)  # fmt: skip


def daemon_environment() -> dict[str, str]:
    return {
        k: v
        for k, v in os.environ.items()
        if k in _DAEMON_ENVIRONMENT or k.startswith(("LC_", "PYTHON"))
    }


def spawn_daemon() -> None:
    """Start the daemon in the background, detached from this command's streams and
    session (a test runner or a pipe waiting for EOF must not wait for it)."""
    import subprocess

    subprocess.Popen(
        [sys.executable, "-m", "portside.daemon"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        close_fds=True,
        start_new_session=True,
        cwd="/",
        env=daemon_environment(),
    )


def wait_until_serving(path: str, timeout: float = 15.0) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if daemon_status(path) is not None:
            return True
        time.sleep(0.02)
    return False


def _verb(argv: Sequence[str]) -> str | None:
    # The first word that is not an option. An option's value read as the verb only
    # means the command runs here: never a different command.
    for token in argv:
        if not token.startswith("-"):
            return token
    return None


def _usable_socket() -> str | None:
    if private_problem(runtime_dir()) is not None:
        return None  # none made yet (so no daemon), or not ours to use
    return socket_path()


def prepare_runtime_dir() -> str:
    """Make the runtime directory if needed; the socket path. Raises DaemonUnavailable."""
    if sys.platform != "linux":
        _unavailable("the daemon runs on Linux only")
    directory = runtime_dir()
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
    except OSError as exc:
        _unavailable(f"cannot make {directory}: {exc.strerror}")
    problem = private_problem(directory)
    if problem is not None:
        _unavailable(problem)
    path = socket_path()
    if len(os.fsencode(path)) > 100:  # sun_path holds 108 bytes
        _unavailable(f"the socket path {path} is too long for a unix socket")
    return path


def daemon_status(path: str | None = None) -> str | None:
    """The running daemon's status text, or None."""
    answer = ask("status", path=path)
    if answer is None or answer[:1] != INFO:
        return None
    return answer[1:].decode("utf-8", "replace")


def ensure_running() -> str:
    """Start the daemon unless it runs; the socket path. Raises DaemonUnavailable."""
    path = prepare_runtime_dir()
    if daemon_status(path) is None:
        spawn_daemon()
        if not wait_until_serving(path):
            _unavailable(f"the daemon did not start; its log is {path}.log")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """The ``portside`` command: through the daemon when one serves it, else here."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    how = mode()
    verb = _verb(arguments)
    served = how != "off" and verb in SERVED_VERBS
    if served:
        if verb in CACHE_VERBS and _after_a_pause():
            # After a pause a warm answer is fastest here: through the daemon a command
            # wakes three idle processes in turn (~5 ms here). Commands in a row find
            # them awake; there a cold answer would only pay this try's imports (~3 ms).
            from portside.cli import answer_from_cache

            code = answer_from_cache(arguments)
            if code is not None:
                return code
        if how == "on":
            _ensure_daemon()
        path = _usable_socket()
        if path is not None:
            code = run_in_daemon(arguments, path)
            if code is not None and argv is None:
                # The worker did the command; this process (the program, not a caller's)
                # has nothing to tear down, and the interpreter's orderly exit would
                # cost ~3 ms.
                for stream in (sys.stdout, sys.stderr):
                    try:  # noqa: SIM105
                        stream.flush()
                    except (OSError, ValueError):
                        pass
                os._exit(code)
            if code is not None:
                return code
    from portside.cli import main as cli_main

    code = cli_main(arguments)
    # "httpx" imported means this command waited on imports a daemon already has.
    if served and how == "auto" and "httpx" in sys.modules and not os.environ.get("CI"):
        _start_quietly()
    return code


_PAUSE = 0.1  # seconds since the last command started, past which processes are idle


def last_command_marker() -> str:
    return os.path.join(runtime_dir(), "last-command")


def _after_a_pause() -> bool:
    """Whether the last command (any, of this user) started over ``_PAUSE`` ago; notes
    this one. A file's modification time is the record: a stat and a utime, no more."""
    import time

    now = time.time()
    try:
        marker = last_command_marker()
        last = os.stat(marker).st_mtime
        os.utime(marker)
    except OSError:
        return True  # no runtime directory (so no daemon), or no command yet
    return now - last > _PAUSE


def _ensure_daemon() -> None:
    """``PORTSIDE_DAEMON=on``: start it if needed; if it cannot run here, say why once
    per command (the command itself still runs, in-process)."""
    from portside.errors import PortsideError

    try:
        ensure_running()
    except (PortsideError, OSError) as exc:
        sys.stderr.write(f"portside: warning: the daemon is not used: {exc}\n")


# Auto mode starts a daemon at most this often: one that fails to start (its log says
# why) must not cost every later command a spawn.
_RESPAWN_AFTER = 30.0


def _start_quietly() -> None:
    import time

    from portside.errors import PortsideError

    try:
        marker = prepare_runtime_dir() + ".spawned"
        try:
            if time.time() - os.stat(marker).st_mtime < _RESPAWN_AFTER:
                return
        except FileNotFoundError:
            pass
        with open(marker, "w"):
            pass  # its modification time is the record
        spawn_daemon()
    except (PortsideError, OSError):
        return  # a faster next command is a nicety, never a failure of this one
