"""``python -m verification ...`` is the same as the ``verification`` command."""

import sys

from verification.cli import main

sys.exit(main())
