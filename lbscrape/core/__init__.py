"""The core: value types, configuration and pure logic every side shares.

Imports nothing of the other packages and no client library.
"""
