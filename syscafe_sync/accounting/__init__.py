"""Posting the consolidated vouchers to accounting: the mapping (mapping.py), the journal lines of
one voucher (entries.py), storing and delivering entries (journal.py), the destinations (export.py, http.py)."""
