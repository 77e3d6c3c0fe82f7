"""Helpers that the tests and the benches share (never imported by the product's packages).

``testing.cli``: run a ``budgetvakt`` command as a child process, as a user would.
``testing.benches``: the benches under ``bench/`` and how to run each once at a tiny size.
"""
