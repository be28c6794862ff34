"""``python -m driver`` is ``bench-driver``."""

from driver.cli import main

raise SystemExit(main())
