"""Unwrapping task-group exception groups into the error that caused them."""

from __future__ import annotations

__all__ = ["first_error"]


def first_error(error: BaseException) -> BaseException:
    """The first leaf of a (nested) exception group, preferring real errors to cancellations."""
    while isinstance(error, BaseExceptionGroup):
        leaves = error.exceptions
        real = [e for e in leaves if isinstance(e, Exception)]
        error = (real or list(leaves))[0]
    return error
