"""``python -m portside``: the same as the ``portside`` command."""

from portside.launcher import main

raise SystemExit(main())
