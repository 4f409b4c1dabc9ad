"""plugtron's built-in plugins. Each module is one plugin, registered through the
``plugtron.plugins`` entry-point group in pyproject.toml and enabled by its config toggle.
Core never imports these modules; the plugin manager loads the enabled ones by entry point."""
