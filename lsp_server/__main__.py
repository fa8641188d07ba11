import sys

from lsp_server import main

sys.exit(main())
