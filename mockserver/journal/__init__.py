"""The journal: its contract, the memory journal and the SQLite journal.

Imports the top of `mockserver` and `mockserver.contract`; never a web framework.
"""
