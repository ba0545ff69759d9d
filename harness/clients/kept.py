"""What a faulty variant never lets go of, released only when the harness is done."""
from __future__ import annotations

import threading
from collections.abc import Callable


class Kept:
    """A thread-safe list of objects a leaky client keeps referenced.

    Keeping the reference is the leak: in CPython a dropped client or response
    is closed at once by reference counting, and the leak would vanish.
    ``release(close)`` is not part of any faulty behaviour; it lets the harness
    leave no socket behind.
    """

    def __init__(self) -> None:
        self._items: list = []
        self._lock = threading.Lock()

    def keep(self, obj):
        with self._lock:
            self._items.append(obj)
        return obj

    def take_all(self) -> list:
        with self._lock:
            items, self._items = self._items, []
        return items

    def release(self, close: Callable[[object], object]) -> None:
        for obj in self.take_all():
            close(obj)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
