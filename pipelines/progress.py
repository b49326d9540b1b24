"""A hook through which long loads report progress to whoever started them (the CLI's bar).

Inside the Dagster daemon nobody listens and reports go nowhere; the main job
sets a listener in its worker processes so its progress bar moves per delivery.
"""

from __future__ import annotations

from collections.abc import Callable

Listener = Callable[[str, str, int], None]  # unit, delivery, rows in the delivery
_listener: Listener | None = None


def listen(listener: Listener | None) -> None:
    global _listener
    _listener = listener


def delivery_loaded(unit: str, delivery: str, rows: int) -> None:
    if _listener is not None:
        _listener(unit, delivery, rows)
