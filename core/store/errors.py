"""The store's exceptions, in a module of their own so every file of the package can raise them."""

from __future__ import annotations


class StoreError(RuntimeError):
    """A store file cannot be used as asked (missing, not a store, wrong arguments)."""


class SchemaMismatchError(StoreError):
    """The file's schema differs from the one this code was written for."""
