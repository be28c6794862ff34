"""bench-driver's built-in plugins. Each module registers through driver.hookspecs, exactly as a
third-party plugin would; driver.plugins.DEFAULT_PLUGINS is the list of them."""
