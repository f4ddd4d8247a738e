"""Settings, logging and Sentry set-up shared by every process."""

from config.settings import ConfigError, Settings, build_settings, get_settings, load_settings

__all__ = ["ConfigError", "Settings", "build_settings", "get_settings", "load_settings"]
