"""Results of `save_soon` and `load_soon`, ready once their saver or loader block exits."""

from __future__ import annotations

from typing import Generic
from typing import TypeVar

from lakery.common.exceptions import LakeryError

__all__ = ["Future", "NotReadyError"]

T = TypeVar("T")


class NotReadyError(LakeryError, RuntimeError):
    """A future was read before its saver or loader block exited."""


class Future(Generic[T]):
    """The result of one `save_soon` or `load_soon` call."""

    __slots__ = ("_error", "_result")

    def __init__(self) -> None:
        self._result: tuple[T] | None = None  # (result,) once set
        self._error: BaseException | None = None

    def done(self) -> bool:
        """Whether a result or an error has been set."""
        return self._result is not None or self._error is not None

    def get(self) -> T:
        """The result; raises the error that prevented it, or `NotReadyError` if too early."""
        if self._error is not None:
            raise self._error
        if self._result is None:
            msg = "the result is ready only after the `async with` block of the saver/loader exits"
            raise NotReadyError(msg)
        return self._result[0]

    def exception(self) -> BaseException | None:
        """The error that prevented the result, if any."""
        return self._error

    def set_result(self, result: T) -> None:
        self._result = (result,)

    def set_exception(self, error: BaseException) -> None:
        self._error = error

    def __repr__(self) -> str:
        state = "failed" if self._error else "done" if self.done() else "pending"
        return f"<Future {state}>"
