"""paycore: aggregated payment middle platform."""
__version__ = "0.1.0"
