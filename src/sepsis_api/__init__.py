"""Sepsis Risk API: calibrated, explained sepsis-risk estimates with an audit trail."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("sepsis-api")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"
