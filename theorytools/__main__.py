"""``python -m theorytools ...`` is the same as the ``theorytools`` command."""

import sys

from theorytools.cli import main

sys.exit(main())
