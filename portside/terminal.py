"""Text a registry, a builder or a file controls, made safe to print on a terminal."""

from __future__ import annotations

# C0 controls, DEL and C1 controls: a registry's tag, label or error text must not be
# able to move the cursor, rewrite the terminal title or hide text from the reader.
_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))}
_CONTROL_BUT_TAB = {c: v for c, v in _CONTROL.items() if c != 0x09}


def clean(text: str, *, keep_tabs: bool = False) -> str:
    """``text`` with control characters shown as ``\\xNN`` escapes (tabs kept if asked:
    a builder's output lines)."""
    return text.translate(_CONTROL_BUT_TAB if keep_tabs else _CONTROL)
