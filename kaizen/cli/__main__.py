"""`python -m kaizen.cli`: the same as the `kaizen` script (serve starts processors this way)."""

import sys

from kaizen.cli import main

sys.exit(main())
