"""``python -m disbench``: the ``disbench`` command."""

import sys

from disbench.cli import main

sys.exit(main())
