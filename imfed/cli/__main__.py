"""``python -m imfed.cli``: the ``imfed`` command."""

import sys

from . import main

sys.exit(main())
