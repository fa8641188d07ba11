"""Portside's Dockerfile language server (pygls): ``python -m lsp_server`` or
``portside lsp``. See :mod:`lsp_server.settings` for the settings and their precedence."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server on stdio (default) or ``--tcp HOST:PORT``; returns an exit code."""
    import gc

    # Start-up: lsprotocol defines ~600 attrs classes, and the collector's passes over
    # them while the server's modules load cost ~0.1 s. Collect nothing while loading,
    # then freeze what was loaded (it lives as long as the process): later collections
    # skip it, which also keeps them short while the editor waits.
    gc.disable()
    try:
        return _main(argv)
    finally:
        gc.enable()


def _quiet_unknown_methods(record: logging.LogRecord) -> bool:
    message = str(record.msg)
    return not ("unknown method" in message and record.levelno <= logging.WARNING)


def _main(argv: Sequence[str] | None) -> int:
    import gc

    parser = argparse.ArgumentParser(
        prog="portside lsp", description="Portside Dockerfile language server"
    )
    parser.add_argument("--stdio", action="store_true", help="talk LSP on stdin/stdout (default)")
    parser.add_argument("--tcp", metavar="HOST:PORT", help="listen on a TCP address instead")
    parser.add_argument(
        "--log-level", default="warning", choices=["debug", "info", "warning", "error"]
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))

    try:
        from .handlers import create_server
        from .server import __version__
    except ImportError as exc:  # a broken install: say what is missing, no traceback
        print(
            f"portside lsp: cannot load the language server ({exc}); "
            "reinstall portside, which installs pygls and lsprotocol",
            file=sys.stderr,
        )
        return 2
    if args.version:
        print(f"portside-lsp {__version__}")
        return 0
    # Logs go to stderr: stdout is the protocol. pygls's own loggers stay at WARNING
    # (at INFO it logs the whole initialize request, initializationOptions included).
    logging.basicConfig(
        stream=sys.stderr, level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("portside").setLevel(args.log_level.upper())
    logging.getLogger("pygls").setLevel(logging.WARNING)
    # A request or notification the server does not offer is answered as the protocol
    # says (MethodNotFound, or ignored); editors file every stderr line as an error.
    logging.getLogger("pygls.protocol.json_rpc").addFilter(_quiet_unknown_methods)

    server = create_server()
    gc.freeze()
    gc.enable()
    if args.tcp:
        host, sep, port = args.tcp.rpartition(":")
        if not sep or not port.isdigit():
            parser.error("--tcp wants HOST:PORT")
        server.start_tcp(host.strip("[]") or "127.0.0.1", int(port))
    else:
        server.start_io()
    return 0
