"""``python -m portside``: the same as the ``portside`` command."""

from portside.cli import main

raise SystemExit(main())
