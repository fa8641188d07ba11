"""Portside: container registries inside the editor and the build.

The core is read top-down; each module depends only on those above it:
``errors`` and ``redact``, ``reference``, ``registry/``, ``cache``, ``images``, ``cli``.
"""

__version__ = "0.1.0"
