"""pre-commit hooks: ``portside-check``, ``portside-pin`` and ``portside-lint``.

Each hook is a ``main(argv) -> int`` taking the file names pre-commit passes (matched by
``files:`` in ``.pre-commit-hooks.yaml``, which is ``portside.discover``'s rule) and
translating them into calls of the core: :mod:`portside.check`, :mod:`portside.pin`,
:mod:`portside.verdict`. No registry or Dockerfile logic lives here.
"""
