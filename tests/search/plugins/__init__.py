"""Plugins the search tests name in their space files (``plugins: [tests.search.plugins.x]``).

Each registers a trial hook on import. Their parameters come from environment variables the
test sets for the search it starts (Ray's local workers inherit the driver's environment); a
plugin whose variable is unset does nothing.
"""
