"""Watcher notices in the editor: ``portside watch --editor`` (or ``editor = true`` in
``[tool.portside.notify]``) appends each change to an inbox file in the user's state
directory; every running server follows it, and for a change to an image its
workspace uses it shows a message naming the image and the Dockerfile lines, with an
"Update" action that applies the core's fix (the same edits as the ``stale``,
``variant-update`` and ``tag-moved`` code actions) through ``workspace/applyEdit``.

Only notices written while the server runs are shown: an editor opened later sees the
same facts as diagnostics.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lsprotocol import types as lsp

from portside import errors
from portside.dockerfile import ImageUse, parse
from portside.notify.base import Notification
from portside.notify.editor import Inbox
from portside.reference import Reference

from .positions import Codec

if TYPE_CHECKING:
    from .server import PortsideLanguageServer

log = logging.getLogger("portside.lsp")

POLL_SECONDS = 0.5
UPDATE = "Update"
# The label of the Update's workspace/applyEdit. The VS Code extension saves the files
# of an edit so labelled (vscode-extension/src/watchUpdate.ts): keep the prefix.
EDIT_LABEL = "portside: update "
# Not "Dismiss": the watcher tells each change once, so answering this notice is
# ignoring that change (its diagnostic stays, with its own fixes).
IGNORE = "Ignore"
# Which finding's fix answers which change.
FIX_KINDS = {
    "rebuilt": ("tag-moved",),
    "newer": ("stale",),
    "variant-update": ("variant-update",),
    "end-of-life": ("end-of-life",),  # to the newest build of the line not retired
}
WARNING_KINDS = {"removed", "end-of-life", "vulnerable"}


@dataclass
class Place:
    path: Path
    uri: str
    text: str
    uses: list[ImageUse]
    version: int | None  # of the open document; None: the text on disk


def _watched_name(use: ImageUse) -> str | None:
    """How a watcher's notice names the image ``use`` names (None: none it would watch)."""
    from portside.watch.targets import watched_tag

    if use.resolved is None or not use.is_image:
        return None
    try:
        tag = watched_tag(Reference.parse(use.resolved))
    except errors.InvalidReference:
        return None
    return None if tag is None else f"{tag.name}:{tag.tag}"


def _pinned(use: ImageUse) -> bool:
    try:
        return use.resolved is not None and Reference.parse(use.resolved).digest is not None
    except errors.InvalidReference:
        return False


class Notices:
    """Shows what the watcher's inbox receives, for as long as the server runs."""

    def __init__(self, server: PortsideLanguageServer, path: Path | None = None) -> None:
        self.server = server
        self.inbox = Inbox(path)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(POLL_SECONDS)
            for note in self.inbox.new_notifications():
                # Each on its own: a notice the user leaves unanswered (VS Code moves it
                # to its notification centre) must not hold back the next one.
                self.server.spawn(self._announce(note))

    async def _announce(self, note: Notification) -> None:
        try:
            await self.announce(note)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # one bad notice must not stop the others
            log.error("watch notice failed: %s", type(exc).__name__)

    def places(self, image: str) -> list[Place]:
        """Workspace Dockerfiles (open text first, else disk) that use ``image``."""
        from portside.discover import find_dockerfiles

        root = self.server.root
        if root is None:
            return []
        out: list[Place] = []
        for path in find_dockerfiles([root])[:500]:
            uri = path.resolve().as_uri()
            snap = self.server.analysable(uri)
            text = snap.text if snap is not None else path.read_text(encoding="utf-8")
            doc = snap.doc if snap is not None else parse(text)
            uses = [u for u in doc.images if _watched_name(u) == image]
            if uses:
                out.append(Place(path, uri, text, uses, snap.version if snap else None))
        return out

    async def announce(self, note: Notification) -> None:
        places = self.places(note.image)
        if not places:
            return
        root = self.server.root
        lines = ", ".join(
            f"{_relative(p.path, root)}:{u.range.start.line + 1}" for p in places for u in p.uses
        )
        # A rebuild needs an edit only where the image is pinned (the pin moves along);
        # elsewhere the next build picks it up.
        fixable = note.kind in FIX_KINDS and (
            note.kind != "rebuilt" or any(_pinned(u) for p in places for u in p.uses)
        )
        # The action is a sentence of its own here.
        tail = "Update applies the fix." if fixable else note.action[:1].upper() + note.action[1:]
        message = f"{note.summary}. Used in {lines}." + (f" {tail}" if tail else "")
        actions = [lsp.MessageActionItem(title=UPDATE)] if fixable else []
        actions.append(lsp.MessageActionItem(title=IGNORE))
        answer = await self.server.window_show_message_request_async(
            lsp.ShowMessageRequestParams(
                type=lsp.MessageType.Warning
                if note.kind in WARNING_KINDS
                else lsp.MessageType.Info,
                message=message,
                actions=actions,
            )
        )
        if answer is None or answer.title != UPDATE:
            return
        # The answer may come long after the question: fix the text as it is now.
        edit = await self.fix(note, self.places(note.image))
        if not edit.document_changes:
            self.server.window_show_message(
                lsp.ShowMessageParams(
                    type=lsp.MessageType.Info,
                    message=f"{note.image}: nothing to update (already up to date)",
                )
            )
            return
        result = await self.server.workspace_apply_edit_async(
            lsp.ApplyWorkspaceEditParams(edit=edit, label=f"{EDIT_LABEL}{note.image}")
        )
        if not result.applied:
            why = result.failure_reason or "the editor refused the edit"
            # Typically a document edited while the registry was asked (its version moved).
            self.server.window_show_message(
                lsp.ShowMessageParams(
                    type=lsp.MessageType.Warning,
                    message=f"{note.image}: not updated ({why}); the quick fix on its line "
                    "does the same",
                )
            )

    async def fix(self, note: Notification, places: list[Place]) -> lsp.WorkspaceEdit:
        """The core's fix for every line using the image, checked against the registry now."""
        from portside import policy

        wanted = FIX_KINDS[note.kind]
        encoding = str(self.server.workspace.position_encoding or "utf-16")
        fresh = self.server._make_registry(refresh=True)
        changes: list[lsp.TextDocumentEdit | lsp.CreateFile | lsp.RenameFile | lsp.DeleteFile] = []
        try:
            for place in places:
                doc = parse(place.text)
                config, _ = self.server.policy_config(place.path)
                findings = await policy.check_document(
                    doc, file=str(place.path), text=place.text, config=config, cached=fresh
                )
                lines = {u.range.start.line for u in place.uses}
                codec = Codec(doc.document, encoding)
                edits = {
                    (f.edit.range, f.edit.new_text)
                    for f in findings
                    if f.kind in wanted and f.edit is not None and f.range.start.line in lines
                }
                if edits:
                    # Versioned: an editor refuses it if the document changed meanwhile.
                    changes.append(
                        lsp.TextDocumentEdit(
                            text_document=lsp.OptionalVersionedTextDocumentIdentifier(
                                uri=place.uri, version=place.version
                            ),
                            edits=[
                                lsp.TextEdit(range=codec.range(r), new_text=t)
                                for r, t in sorted(edits)
                            ],
                        )
                    )
        finally:
            await fresh.aclose()
        return lsp.WorkspaceEdit(document_changes=changes)


def _relative(path: Path, root: Path | None) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve())) if root else str(path)
    except ValueError:
        return str(path)


def start(server: PortsideLanguageServer) -> None:
    """Follow the watcher's inbox for as long as the server runs."""
    server.spawn(Notices(server).run())
