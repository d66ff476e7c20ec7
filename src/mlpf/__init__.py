"""mlpf-workflow: machine-learned particle-flow reconstruction, from collider events to physics figures."""

from __future__ import annotations

try:
    from mlpf._version import __version__
except ImportError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
