"""``python -m rivetgreen``: the ``rivetgreen`` command (:mod:`rivetgreen.cli`)."""

import sys

from rivetgreen.cli import main

sys.exit(main())
