"""``python -m benchmarks``: run every benchmark (see `benchmarks.run`)."""

import sys

from benchmarks.run import main

sys.exit(main())
