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
    # Low modules only: the contract's types live in portside.contract, and
    # build.base imports nothing that reaches the plugin manager.
    from portside.build.base import Builder
    from portside.contract import (
        Credential,
        DockerfileSource,
        Finding,
        ImageAttachments,
        PullCountSource,
        VersionScheme,
        Vulnerability,
        VulnerabilityReport,
    )
    from portside.dockerfile import Dockerfile
    from portside.notify.base import Notifier, NotifySettings

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


@hookspec
def portside_dockerfile_findings(path: str, text: str, document: Dockerfile) -> list[Finding]:
    """Return extra findings for one Dockerfile (a linter's diagnostics, say).

    ``path`` is the file as the surface names it (a path on disk, or the editor's URI
    for a document never saved), ``text`` its exact text, ``document`` the core's parse
    of it. Return ``portside.policy.Finding`` objects with ``kind`` named
    ``"<plugin>/<rule>"`` (``"hadolint/DL3008"``), ``severity`` one of ``error``,
    ``warning``, ``info``, ``hint``, ``image`` ``""`` unless the finding is about an
    image, and ``range`` the lines it is about. Return ``[]`` when the plugin has
    nothing to say or cannot run here (a tool not installed is not an error).

    The core then sets ``file``, applies ``[tool.portside.severity]`` (by kind, or by
    the ``"<plugin>"`` prefix), and drops findings silenced by a ``# portside:
    ignore=<kind>`` comment on the line above (``ignore=<plugin>`` silences all of the
    plugin's kinds) or by an ``ignore`` list in an ``[[tool.portside.images]]`` rule with
    ``match = "*"`` (plugin findings are per line, not per image).

    Called by ``policy.check_document`` for every document (the language server), and
    for every document of a batch (``portside check``, the pre-commit hooks) unless the
    plugin implements ``portside_dockerfile_batch_findings``; each plugin on its own in a
    worker thread: a plugin may block (run a process), but must give up within ten
    seconds or so; the core stops waiting after ``policy.PLUGIN_TIMEOUT``. A plugin that
    raises, times out or returns something other than findings becomes one finding of
    kind ``plugin-error`` naming the plugin; the other findings are unaffected. The
    built-in ``portside.hadolint`` runs hadolint when its binary is installed.

    The language server calls it while the user edits: then
    ``portside.plugins.in_background()`` is true, and a plugin that starts a process
    lowers its priority with ``portside.plugins.lower_priority(pid)``.
    """
    raise NotImplementedError  # a specification: pluggy never calls this body


@hookspec
def portside_dockerfile_batch_findings(documents: list[DockerfileSource]) -> list[Finding]:
    """Return extra findings for many Dockerfiles at once: the batch form of
    ``portside_dockerfile_findings``, for a linter that costs a process start per call.

    ``documents`` are ``portside.contract.DockerfileSource`` objects (``path``, exact
    ``text``, ``document``: the core's parse). Return findings as the per-document hook
    does, each with ``file`` set to the ``path`` of the document it is about (a finding
    naming any other path is a broken answer). The core then treats each document's
    findings exactly as the per-document hook's (severities, ``ignore`` comments and
    rules, lines past the end dropped).

    Surfaces that check many files (``portside check``, the pre-commit hooks) call this
    once per run through ``policy.batch_plugin_findings``, and a plugin that implements
    it is then *not* asked per document; plugins that implement only the per-document
    hook are asked per document as before. The language server checks one document at
    a time and uses only the per-document hook, so implement both.

    Called in a worker thread; may block. The core stops waiting after
    ``policy.PLUGIN_TIMEOUT`` plus ``policy.BATCH_TIMEOUT_PER_DOCUMENT`` per document. A
    plugin that raises, times out or answers wrongly becomes one ``plugin-error``
    finding naming it on every document of the batch. The built-in ``portside.hadolint``
    runs hadolint once over the files on disk (a few processes, one per CPU at most),
    not once per file.
    """
    raise NotImplementedError  # a specification: pluggy never calls this body


@hookspec
def portside_vulnerabilities(
    image: ImageAttachments,
) -> list[Vulnerability] | VulnerabilityReport:
    """Return the known vulnerabilities of one image (``portside.vulnerabilities``).

    ``image.reference`` names the image, ``image.digests`` its index and/or platform
    manifest, ``image.attachments`` the reports attached to them as OCI referrers
    (SARIF and OpenVEX artifacts, with their bytes). Return ``Vulnerability`` objects
    (id, severity one of ``low``, ``medium``, ``high``, ``critical`` or ``unknown``,
    package, fixed-in version), or a ``VulnerabilityReport`` when some input could not
    be read (its ``warnings`` are shown, naming what was ignored). A plugin that calls
    a local scanner may ignore the attachments and scan ``image.reference`` itself.

    Called in a worker thread, each plugin on its own: one that raises becomes one
    warning naming it; the others' answers stand. OpenVEX statements attached to the
    image are applied afterwards to every plugin's answer. The built-in
    ``portside.attached_reports`` reads attached SARIF 2.1.0 reports.
    """
    raise NotImplementedError  # a specification: pluggy never calls this body


@hookspec
def portside_notifiers(settings: NotifySettings) -> list[Notifier]:
    """Return the notifiers this plugin provides for ``settings`` (``[]`` when none apply).

    ``settings`` is ``[tool.portside.notify]`` as parsed (``portside.notify.NotifySettings``)
    plus what the command line added; keys the core does not know are in
    ``settings.extra`` for plugins to read (``[tool.portside.notify] myplugin = {...}``).
    Return ``portside.notify.Notifier`` instances with unique ``name``s; construct cheaply
    and raise ``portside.errors.ConfigError`` for settings you cannot use (a missing
    library, a malformed URL): the caller stops before anything is checked or sent.

    Called once per ``portside watch`` run and per publish. The watcher then calls
    ``await notifier.send(notification)`` for every change, through its outbox: a
    notification is recorded as sent only after ``send`` returned, and a failure
    (``portside.notify.NotifyError``, or any exception) is recorded with its message and
    retried in later rounds. ``send`` must bound its own time (the built-in webhook
    retries with backoff within a timeout). Set ``idempotent = True`` only if a second
    ``send`` of the same ``notification.id`` cannot reach a person twice: after a crash
    between sending and recording, idempotent notifiers are asked again, the others are
    recorded as ``uncertain``. Built-ins: ``portside.notify.console``, ``.jsonl``,
    ``.webhook``, ``.apprise_chat``, ``.desktop``, ``.editor``.
    """
    raise NotImplementedError  # a specification: pluggy never calls this body


@hookspec
def portside_pull_count_sources() -> list[PullCountSource]:
    """Return the pull-count sources this plugin provides (``portside usage`` shows them).

    Pull counts are registry-side figures the distribution API does not carry. A source
    (``portside.contract.PullCountSource``, subclass it) has a ``name``, ``handles(repository)``
    saying whether it knows that reference's registry, and ``async pull_count(repository)``
    returning the repository's total pulls, or ``None`` when the registry does not say
    (then the next source that handles it is asked, and usage shows the count as
    unknown, never 0). It must bound its own time; an exception is reported with the
    source's name and does not stop ``usage``. Built-in: ``portside.pull_counts``
    (Docker Hub's repository API, public repositories).
    """
    raise NotImplementedError  # a specification: pluggy never calls this body
