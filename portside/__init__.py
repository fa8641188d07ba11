"""Portside: container registries inside the editor and the build.

The core is read top-down; each module depends only on those above it:
``errors``, ``redact`` and ``jsonscan``, ``reference``, ``registry/``, ``cache``, ``images``,
``cli`` (the ``portside`` command: one process per command, answered from the cache
without importing the network stack when it can be).
"""

__version__ = "0.1.0"
