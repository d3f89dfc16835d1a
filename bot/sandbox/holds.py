"""CallHold: stop an AWS call in the world until a test lets it go.

Some faults need an exact moment, such as "after the rollout succeeded, before the first
schedule is read". Holding that call is a condition to wait on, not a race against a timer.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any


class CallHold:
    """Holds the next `times` calls of one moto backend method until `release()`."""

    def __init__(self, backend_type: type[Any], method: str, times: int = 1) -> None:
        self._type = backend_type
        self._method = method
        self._original: Callable[..., Any] = getattr(backend_type, method)
        self._left = times
        self._lock = threading.Lock()
        self._released = threading.Event()
        self.reached = threading.Event()
        """Set once a call is being held: the caller is stopped inside it."""

        original = self._original

        @functools.wraps(original)
        def held(backend: Any, *args: Any, **kwargs: Any) -> Any:
            with self._lock:
                hold = self._left > 0
                self._left -= 1 if hold else 0
            if hold:
                self.reached.set()
                self._released.wait(timeout=120)
            return original(backend, *args, **kwargs)

        setattr(backend_type, method, held)

    def release(self) -> None:
        """Let held calls go on and stop holding new ones."""
        setattr(self._type, self._method, self._original)
        self._released.set()
