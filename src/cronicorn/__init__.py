"""Cronicorn: a self-hosted scheduler for HTTP jobs that understand their own responses."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("cronicorn")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"
