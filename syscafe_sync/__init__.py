"""syscafe-sync: consolidates the cajas of a LAN into one main server."""

__version__ = "0.1.0"
