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
    from portside.build.base import Builder
    from portside.registry.credentials import Credential
    from portside.versions import VersionScheme

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


@hookspec
def portside_version_schemes() -> list[VersionScheme]:
    """Return the tag version schemes this plugin provides (``VersionScheme`` instances).

    Each scheme has a unique ``name``; configuration maps images to schemes by it
    (``scheme = "debian"`` in an ``[[tool.portside.images]]`` rule). When two plugins
    provide the same name the one registered first wins, so built-ins (``docker``, the
    default, and ``debian``, ``ubuntu``, ``calendar``, ``prefixed``) cannot be replaced
    by accident; block the built-in plugin ``portside.schemes`` to replace them.

    Called once per process, the first time a scheme other than the default is asked
    for (the default never loads plugins). Each plugin is called on its own: one that
    raises loses its schemes and is named in the error if one of them is asked for.
    Schemes must be instances of ``portside.versions.VersionScheme`` (subclass it).
    """
    raise NotImplementedError  # a specification: pluggy never calls this body


@hookspec
def portside_builders() -> list[Builder]:
    """Return the image builders this plugin provides (``portside.build.Builder`` instances).

    Each builder has a unique ``name`` (``docker``, ``buildah``, ``native`` are built in);
    ``[tool.portside.image] builder = "NAME"`` chooses one. When two plugins provide the
    same name the one registered first wins. A builder must construct cheaply: whether it
    can run here is asked later through ``Builder.unavailable_reason()``.
    """
    raise NotImplementedError  # a specification: pluggy never calls this body
