"""Unwrapping task-group exception groups into the error that caused them."""

from __future__ import annotations

from typing import NoReturn

__all__ = ["first_error", "raise_first"]


def first_error(error: BaseException) -> BaseException:
    """The first leaf of a (nested) exception group, preferring real errors to cancellations."""
    while isinstance(error, BaseExceptionGroup):
        leaves = error.exceptions
        real = [e for e in leaves if isinstance(e, Exception)]
        error = real[0] if real else leaves[0]
    return error


def raise_first(error: BaseExceptionGroup) -> NoReturn:
    """Raise the first leaf of a task group's exception group instead of the group, with
    the leaf's own ``__cause__`` kept (``raise leaf from None`` would erase it)."""
    leaf = first_error(error)
    raise leaf from leaf.__cause__
