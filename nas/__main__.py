"""``python -m nas`` is the ``nas`` command."""

import sys

from nas.cli.main import main

sys.exit(main())
