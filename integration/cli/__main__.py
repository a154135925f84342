"""``python -m integration.cli``: the ``leadloop`` command."""

import sys

from integration.cli.main import main

sys.exit(main())
