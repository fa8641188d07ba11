"""Portside: container registries inside the editor and the build.

The core is read top-down; each module depends only on those above it:
``errors``, ``redact`` and ``jsonscan``, ``reference``, ``registry/``, ``cache``, ``images``,
``cli``; then ``launcher`` (the ``portside`` entry point: it hands commands to the
daemon or runs them through ``cli``), ``rehearsal`` and ``daemon``.
"""

__version__ = "0.1.0"
