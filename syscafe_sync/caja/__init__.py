"""The caja folder, format 1 (SPEC §1): its names and the caja-side writer."""

from .writer import CajaWriter, make_closing, make_voucher

__all__ = ["CajaWriter", "make_closing", "make_voucher"]
