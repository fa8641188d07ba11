"""Where Portside keeps state that must survive (the watcher's database, the editor inbox)."""

from __future__ import annotations

import os
from pathlib import Path


def default_state_dir() -> Path:
    """``$PORTSIDE_STATE_DIR``, else ``$XDG_STATE_HOME/portside``, else ~/.local/state/portside."""
    explicit = os.environ.get("PORTSIDE_STATE_DIR")
    if explicit:
        return Path(explicit).expanduser().absolute()
    # The XDG spec says a relative XDG_STATE_HOME is invalid and must be ignored.
    xdg = os.environ.get("XDG_STATE_HOME")
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "portside"
    return Path.home() / ".local" / "state" / "portside"
