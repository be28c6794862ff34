"""bench-driver: run a benchmark command, scrape its log, measure its memory, report JSON."""

__version__ = "0.1.0"
