"""The plugin contract: every hook Portside calls, documented in one place.

Plugins implement these with ``@portside.hookimpl`` and register through the entry
point group ``portside`` (``[project.entry-points.portside]`` in their pyproject).
Portside's own implementations are registered the same way (see ``plugins.py``), so a
third-party plugin can sit before, after or instead of any built-in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from portside.registry.credentials import Credential

hookspec = pluggy.HookspecMarker("portside")


@hookspec(firstresult=True)
def portside_credentials(registry: str) -> Credential | None:
    """Return credentials for ``registry``, or ``None`` to let the next source answer.

    ``registry`` is the host exactly as the image reference names it, normalised
    (``docker.io``, ``ghcr.io``, ``localhost:5000``). A source must answer only for that
    exact host: credentials chosen for one registry are never offered to another.

    Called in a worker thread: a source may block (credential helpers are processes),
    but must give up within a few seconds and raise ``CredentialError`` if it cannot
    answer. Built-in sources, first to last: environment variables, the docker config
    (``credHelpers``, ``credsStore``, ``auths``), podman's ``auth.json``.
    """
