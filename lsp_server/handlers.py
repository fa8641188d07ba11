"""LSP methods registered on a :class:`PortsideLanguageServer`: each one a thin call of
:mod:`lsp_server.features` on what the server and the core know."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from lsprotocol import types as lsp

from portside import errors
from portside.reference import Reference

from . import commands
from .lazy import lazy
from .server import PortsideLanguageServer, _safe

if TYPE_CHECKING:
    from portside import versions

    from . import features
else:  # loaded with the first request that needs them, not for initialize
    versions = lazy("portside.versions")
    features = lazy("lsp_server.features")


def _none() -> None:
    return None


def _empty() -> list[Any]:
    return []


def create_server() -> PortsideLanguageServer:
    server = PortsideLanguageServer()

    def feature(method: str, options: Any = None) -> Any:
        return server.feature(method, options)

    # -- lifecycle -----------------------------------------------------------------

    def initialize(params: lsp.InitializeParams) -> None:
        server.init_options = params.initialization_options
        server.apply_settings()

    async def initialized(params: lsp.InitializedParams) -> None:
        from . import watch

        watch.start(server)  # the watcher's notices from now on (portside watch --editor)
        await pull_configuration()
        # Documents opened while the configuration was asked for are checked again.
        for uri in list(server.workspace.text_documents):
            server.schedule(uri, 0)
        server.spawn(server.scan_workspace())
        server._recheck = asyncio.ensure_future(server.recheck_loop())

    async def pull_configuration() -> None:
        caps = server.client_capabilities
        if caps.workspace is None or not caps.workspace.configuration:
            return
        try:
            answer = await server.budget(
                server.workspace_configuration_async(
                    lsp.ConfigurationParams(items=[lsp.ConfigurationItem(section="portside")])
                ),
                5.0,
            )
        except (TimeoutError, Exception) as exc:  # a client that cannot answer: defaults
            features_log(f"workspace/configuration failed: {type(exc).__name__}")
            return
        server.client_config = answer[0] if answer else None
        server.client_config_source = "workspace/configuration"
        server.apply_settings()

    async def did_change_configuration(params: lsp.DidChangeConfigurationParams) -> None:
        settings = params.settings
        if isinstance(settings, dict) and isinstance(settings.get("portside"), dict):
            server.client_config = settings["portside"]
            server.client_config_source = "workspace/didChangeConfiguration"
            server.apply_settings()
        else:
            await pull_configuration()
        for uri in list(server.workspace.text_documents):
            server.schedule(uri, 0)

    def shutdown(params: None) -> None:
        if server._recheck is not None:
            server._recheck.cancel()
        for task in list(server._pending.values()):
            task.cancel()

    # -- documents -------------------------------------------------------------------

    def did_open(params: lsp.DidOpenTextDocumentParams) -> None:
        server.schedule(params.text_document.uri, 0)

    def did_change(params: lsp.DidChangeTextDocumentParams) -> None:
        server.schedule(params.text_document.uri, server.settings.debounce_ms / 1000, reuse=True)

    def did_close(params: lsp.DidCloseTextDocumentParams) -> None:
        server.close(params.text_document.uri)

    def did_save(params: lsp.DidSaveTextDocumentParams) -> None:
        uri = params.text_document.uri
        server.learn_saved(uri)
        if uri.endswith(("pyproject.toml", "portside.toml")):
            server.apply_settings()
            for open_uri in list(server.workspace.text_documents):
                server.schedule(open_uri, 0)

    # -- completion ------------------------------------------------------------------

    @_safe(_none)
    async def completion(params: lsp.CompletionParams) -> lsp.CompletionList | None:
        snap = server.analysable(params.text_document.uri)
        if snap is None:
            return None
        position = snap.codec.to_core(params.position)
        context = features.completion_context(snap.doc, position)
        if context is None:
            return None
        codec = snap.codec
        if context.kind == "arg":
            return lsp.CompletionList(
                is_incomplete=False, items=features.arg_items(snap.doc, context, codec)
            )
        if context.kind in ("image", "stage-or-image"):
            items = []
            if context.kind == "stage-or-image":
                items += features.stage_items(snap.doc, context, codec)
            catalog: list[str] = []
            incomplete = False
            registry = features.catalog_registry(context, server.settings.registries)
            if registry is not None:
                try:
                    names = await server.budget(server.registry.catalog(registry))
                    catalog = [f"{registry}/{name}" for name in names]
                except TimeoutError:
                    incomplete = True
                except errors.PortsideError as exc:
                    features_log(f"catalog of {registry}: {exc.message}")
            items += features.image_name_items(
                context,
                sorted(server.workspace_images),
                server.settings.well_known_images,
                codec,
                recent=server.recent_images,
                catalog=catalog,
                registries=server.settings.registries,
            )
            return lsp.CompletionList(is_incomplete=incomplete, items=items)
        ref = features.image_reference(context)
        if ref is None:
            return None
        if context.kind == "digest":
            tag = features.current_tag(context)
            try:
                named = Reference.parse(context.name) if "$" not in context.name else None
            except errors.InvalidReference:
                named = None
            tag = (named.tag if named is not None else tag) or "latest"
            try:
                descriptor = await server.budget(server.registry.resolve(ref.with_tag(tag)))
            except TimeoutError:
                return lsp.CompletionList(is_incomplete=True, items=[])
            except errors.PortsideError:
                return None
            return lsp.CompletionList(
                is_incomplete=False,
                items=[features.digest_item(context, str(descriptor.digest), tag, codec)],
            )
        try:
            tags = await server.budget(server.registry.tags(ref))
        except TimeoutError:
            return lsp.CompletionList(is_incomplete=True, items=[])
        except errors.PortsideError as exc:
            features_log(f"tags of {ref.name}: {exc.message}")
            return None
        current = features.current_tag(context)
        key = (str(ref), current)
        memo = server._ordered.get(key)
        if memo is not None and memo[0] == hash(tuple(tags)):
            ordered = memo[1]
        else:
            try:
                scheme = versions.scheme_for(ref.name)
            except LookupError:
                scheme = versions.DEFAULT_SCHEME
            ordered = features.order_tags(tags, current, scheme)
            server._ordered[key] = (hash(tuple(tags)), ordered)
        items, cut = features.tag_items(
            context, ordered, server.details.get(ref.name, {}), codec, image=ref.name
        )
        return lsp.CompletionList(is_incomplete=cut, items=items)

    @_safe(lambda: lsp.CompletionItem(label=""))
    async def completion_resolve(item: lsp.CompletionItem) -> lsp.CompletionItem:
        data = item.data
        if not isinstance(data, dict) or not isinstance(data.get("image"), str):
            return item
        try:
            ref = Reference.parse(data["image"])
            info = await server.image_info(ref, None, 0.5)
        except (errors.PortsideError, TimeoutError):
            return item
        item.detail = features.info_detail(info)
        item.documentation = lsp.MarkupContent(
            kind=lsp.MarkupKind.Markdown, value=features.hover_markdown(ref, info, [])
        )
        return item

    # resolve must answer the item it was given when it fails, so wrap by hand.
    async def completion_resolve_safe(item: lsp.CompletionItem) -> lsp.CompletionItem:
        result = await completion_resolve(item)
        return item if result.label == "" else result

    # -- hover -----------------------------------------------------------------------

    @_safe(_none)
    async def hover(params: lsp.HoverParams) -> lsp.Hover | None:
        snap = server.analysable(params.text_document.uri)
        if snap is None:
            return None
        position = snap.codec.to_core(params.position)
        use = snap.doc.image_at(position)
        where_core = use.range if use is not None else None
        if use is None:
            # An ARG default a FROM uses as its image (or part of it): that image.
            found = features.image_of_default(snap.doc, position)
            if found is None:
                return None
            use, arg = found
            where_core = arg.default_range
        assert where_core is not None
        where = snap.codec.range(where_core)
        if use.is_stage_reference and use.stage_reference is not None:
            text = features.stage_hover(snap.doc.stages[use.stage_reference])
        elif use.is_scratch:
            return None
        elif use.resolved is None:
            text = f"`{use.text}` depends on a build argument without a default"
        else:
            try:
                ref = Reference.parse(use.resolved)
            except errors.InvalidReference as exc:
                text = f"`{use.text}`: {exc.message}"
            else:
                notes = [
                    f.message
                    for f in server.findings_now(snap.uri)
                    if f.kind in features.HOVER_KINDS and f.range.start.line == use.range.start.line
                ]
                text = await image_hover(ref, server._platform(use), notes)
        return lsp.Hover(
            contents=lsp.MarkupContent(kind=lsp.MarkupKind.Markdown, value=text), range=where
        )

    async def image_hover(ref: Reference, platform: Any, notes: list[str]) -> str:
        info, problem = None, None
        try:
            info = await server.image_info(ref, platform)
        except TimeoutError:
            problem = "still asking the registry; hover again in a moment"
        except errors.PortsideError as exc:
            problem = exc.message
        newer: list[str] = []
        if ref.tag and problem is None:
            try:
                tags = await server.budget(server.registry.tags(ref.repository_ref()))
                newer = versions.newer_in_line(ref.tag, tags, scheme=versions.scheme_for(ref.name))
            except (TimeoutError, errors.PortsideError, LookupError):
                pass
        return features.hover_markdown(ref, info, newer, problem, notes)

    # -- code actions and commands ---------------------------------------------------

    @_safe(_empty)
    async def code_action(params: lsp.CodeActionParams) -> list[lsp.CodeAction]:
        snap = server.analysable(params.text_document.uri)
        if snap is None:
            return []
        findings = server.findings_now(snap.uri)
        window = snap.codec.core_range(params.range)
        nearby = features.findings_at(snap.doc, findings, window)
        pins = await server.pin_edits(snap, nearby)
        return features.code_actions(
            snap.doc,
            findings,
            window,
            snap.uri,
            snap.version,
            snap.codec,
            pin_edits=pins,
            updates=server.update_options(snap, nearby),
        )

    async def pin_all_command(*args: Any) -> Any:
        uri = args[0] if args and isinstance(args[0], str) else None
        if uri is None:
            return {"changed": 0, "problems": ["pinAll needs a document URI"]}
        return await server.pin_all(uri)

    async def check_now_command(*args: Any) -> Any:
        uris = [a for a in args if isinstance(a, str)] or list(server.workspace.text_documents)
        return await server.check_now(uris)

    def _folder(args: tuple[Any, ...]) -> str | None:
        return args[0] if args and isinstance(args[0], str) else None

    async def publish_dry_run_command(*args: Any) -> Any:
        return await server.release(_folder(args), action="dry-run")

    async def publish_command(*args: Any) -> Any:
        return await server.release(_folder(args), action="publish")

    async def build_command(*args: Any) -> Any:
        return await server.release(_folder(args), action="build")

    # -- navigation ------------------------------------------------------------------

    @_safe(_empty)
    async def document_symbol(params: lsp.DocumentSymbolParams) -> list[lsp.DocumentSymbol]:
        snap = server.analysable(params.text_document.uri)
        if snap is None:
            return []
        return features.document_symbols(snap.doc, snap.codec)

    @_safe(_empty)
    async def definition(params: lsp.DefinitionParams) -> list[lsp.Location]:
        snap = server.analysable(params.text_document.uri)
        if snap is None:
            return []
        return features.definition(
            snap.doc, snap.codec.to_core(params.position), snap.uri, snap.codec
        )

    @_safe(_empty)
    async def references(params: lsp.ReferenceParams) -> list[lsp.Location]:
        snap = server.analysable(params.text_document.uri)
        if snap is None:
            return []
        return features.references(
            snap.doc,
            snap.codec.to_core(params.position),
            snap.uri,
            snap.codec,
            include_declaration=params.context.include_declaration,
        )

    @_safe(_empty)
    async def inlay_hint(params: lsp.InlayHintParams) -> list[lsp.InlayHint]:
        snap = server.analysable(params.text_document.uri)
        if snap is None or not server.settings.inlay_hints:
            return []
        infos = {}
        for index, use, ref in features.image_refs(snap.doc.images):
            info = server.cached_info(ref, server._platform(use))
            if info is not None:
                infos[index] = info
        published = server.published.get(snap.uri)
        findings = published.findings if published is not None else []
        return features.inlay_hints(
            snap.doc, findings, infos, snap.codec, snap.codec.core_range(params.range)
        )

    @_safe(_empty)
    async def document_link(params: lsp.DocumentLinkParams) -> list[lsp.DocumentLink]:
        snap = server.analysable(params.text_document.uri)
        if snap is None or not server.settings.document_links:
            return []
        return features.document_links(snap.doc, snap.codec)

    def features_log(message: str) -> None:
        from .server import log

        log.info("%s", message)

    feature(lsp.INITIALIZE)(initialize)
    feature(lsp.INITIALIZED)(initialized)
    feature(lsp.SHUTDOWN)(shutdown)
    feature(lsp.WORKSPACE_DID_CHANGE_CONFIGURATION)(did_change_configuration)
    feature(lsp.TEXT_DOCUMENT_DID_OPEN)(did_open)
    feature(lsp.TEXT_DOCUMENT_DID_CHANGE)(did_change)
    feature(lsp.TEXT_DOCUMENT_DID_CLOSE)(did_close)
    feature(lsp.TEXT_DOCUMENT_DID_SAVE)(did_save)
    feature(
        lsp.TEXT_DOCUMENT_COMPLETION,
        lsp.CompletionOptions(
            trigger_characters=[":", "@", "/", "=", "{", "$", " "], resolve_provider=True
        ),
    )(completion)
    feature(lsp.COMPLETION_ITEM_RESOLVE)(completion_resolve_safe)
    feature(lsp.TEXT_DOCUMENT_HOVER)(hover)
    feature(
        lsp.TEXT_DOCUMENT_CODE_ACTION,
        lsp.CodeActionOptions(
            code_action_kinds=[lsp.CodeActionKind.QuickFix, lsp.CodeActionKind.Source]
        ),
    )(code_action)
    feature(lsp.TEXT_DOCUMENT_DOCUMENT_SYMBOL)(document_symbol)
    feature(lsp.TEXT_DOCUMENT_DEFINITION)(definition)
    feature(lsp.TEXT_DOCUMENT_REFERENCES)(references)
    feature(lsp.TEXT_DOCUMENT_INLAY_HINT)(inlay_hint)
    feature(lsp.TEXT_DOCUMENT_DOCUMENT_LINK, lsp.DocumentLinkOptions(resolve_provider=False))(
        document_link
    )
    server.command(commands.COMMAND_PIN_ALL)(pin_all_command)
    server.command(commands.COMMAND_CHECK_NOW)(check_now_command)
    server.command(commands.COMMAND_PUBLISH_DRY_RUN)(publish_dry_run_command)
    server.command(commands.COMMAND_PUBLISH)(publish_command)
    server.command(commands.COMMAND_BUILD)(build_command)
    return server
