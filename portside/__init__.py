"""Portside: container registries inside the editor and the build.

The core is read top-down; each module depends only on those above it:
``errors``, ``redact`` and ``jsonscan``, ``reference``, ``registry/``, ``cache``, ``images``,
``cli`` (the ``portside`` command: one process per command, answered from the cache
without importing the network stack when it can be).
"""

import sys as _sys

__version__ = "0.1.0"

# httpx imports its own command line (click, rich, pygments: ~20 ms) whenever click is
# installed, which apprise and many tools bring. Portside never uses httpx's command
# line; an entry of None makes that optional import fail as if click were absent.
_sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
