"""``python -m lakery``: the ``lakery`` command line."""

from lakery.cli import main

raise SystemExit(main())
