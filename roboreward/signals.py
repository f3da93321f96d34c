"""How long-running commands react to Ctrl-C, SIGTERM and SIGHUP: one context manager for all of them.

``roboreward deploy``, ``sim-robot``, ``record``, ``train`` and ``teleop run`` end cleanly on a signal —
the robot held, the episode saved, a checkpoint at a consistent point — so each turns the signals it
handles into a call of its own while it runs, and puts the previous handlers back afterwards::

    with on_signals(lambda sig: node.stop()):            # Ctrl-C and SIGTERM
        node.run()

Python can install handlers only in the main thread; elsewhere (a notebook's worker, a test's thread)
:func:`on_signals` changes nothing and Ctrl-C stays an immediate ``KeyboardInterrupt``.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def on_signals(
    handler: Callable[[signal.Signals], object] | None, signals: Sequence[int] = STOP_SIGNALS
) -> Iterator[bool]:
    """Call ``handler(signal)`` for each of ``signals`` while inside (``None``: ignore them).

    Yields whether the handlers were installed (False outside the main thread). A handler runs in the
    main thread between two bytecodes, so it should only set flags or raise.
    """
    if threading.current_thread() is not threading.main_thread():
        yield False
        return

    def dispatch(signum: int, frame: object) -> None:  # noqa: ARG001
        handler(signal.Signals(signum))  # type: ignore[misc]

    action = signal.SIG_IGN if handler is None else dispatch
    previous = {s: signal.signal(s, action) for s in signals}
    try:
        yield True
    finally:
        for s, old in previous.items():
            signal.signal(s, old if old is not None else signal.SIG_DFL)


__all__ = ["STOP_SIGNALS", "on_signals"]
