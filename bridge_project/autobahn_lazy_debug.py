"""Build autobahn's debug-log arguments only when a debug record is written.

Works around autobahn 26.11.1 (as daphne 4.2.3 uses it):

- `WebSocketProtocol.sendData` (autobahn/websocket/protocol.py), which writes
  every outgoing frame, logs
  `self.log.debug("{func} sent {data_len} bytes for peer {peer}",
  func=hltype(self.sendData), peer=hlval(self.peer), data_len=hlval(len(data)))`.
  txaio binds `debug` to a no-op when the level is above debug, but Python
  evaluates the arguments first: `hltype` inspects the method and, because
  click is installed (daphne pulls it in), colours three strings with
  `click.style`. In a profile of topic fan-out (bench scenario S6) that was
  11 % of the whole process's CPU, for a record nobody asked for.
- `WebSocketProtocol._connectionMade`, once per connection, logs
  `self.log.debug("\n{attrs}", attrs=pformat(configAttrLog))`: a pretty-printed
  table of the 29 protocol options, 0.33 ms of CPU (timeit) in every WebSocket
  handshake.
- The fix rebinds the names `hltype`, `hlval` and `pformat` in autobahn's
  protocol module to versions that return a `LazyHighlight`: it keeps the call
  and runs the real function the first time the record is formatted. A debug
  record reads exactly as before; a dropped one costs one small object.
- The module's one other use of `pformat`, `Timings.__str__`, must return a
  str, so it gets a version that calls `pprint.pformat` itself.

Nothing else in autobahn changes. tests/test_autobahn_lazy_debug.py fails when
sendData or _connectionMade stop building these arguments (then this module
can go), when the names move, or when `pformat` is used some other way.
"""

from __future__ import annotations

import functools
import pprint

PATCHED_NAMES = ("hltype", "hlval", "pformat")


class LazyHighlight:
    """A highlighted log value: autobahn's function and its arguments, called
    the first time the value is formatted."""

    __slots__ = ("_args", "_function", "_kwargs", "_text")

    def __init__(self, function, *args, **kwargs) -> None:
        self._function = function
        self._args = args
        self._kwargs = kwargs
        self._text = None

    def __str__(self) -> str:
        if self._text is None:
            self._text = self._function(*self._args, **self._kwargs)
        return self._text

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)

    def __repr__(self) -> str:
        return str(self)


def deferred(function) -> functools.partial:
    """`function`, returning a LazyHighlight instead of its result."""
    return functools.partial(LazyHighlight, function)


def is_deferred(function) -> bool:
    return isinstance(function, functools.partial) and function.func is LazyHighlight


def install() -> None:
    try:
        from autobahn.websocket import protocol
    except ImportError:  # another ASGI server: nothing to adapt
        return
    for name in PATCHED_NAMES:
        current = getattr(protocol, name)
        if not is_deferred(current):
            setattr(protocol, name, deferred(current))
    if protocol.Timings.__str__ is not timings_text:
        timings_text.upstream = protocol.Timings.__str__
        protocol.Timings.__str__ = timings_text


def timings_text(timings) -> str:
    """autobahn's `Timings.__str__`, with the real `pformat`."""
    return pprint.pformat(timings._timings)
