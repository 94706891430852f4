"""``python -m cass_bench``."""

import sys

from cass_bench.cli import main

sys.exit(main())
