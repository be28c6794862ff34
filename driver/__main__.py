"""``python -m driver`` is ``bench-driver``."""

from driver.cli import console

console()
