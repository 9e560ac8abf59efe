"""The trusted test harness that runs inside the sandbox: the answer never speaks for itself.

This file is the sandbox's program for `run_tests` (`warriorcoder.execution.harness` sends its
source with one line appended that calls `main`). It uses only the standard library and never
imports warriorcoder: in the jail the project's files do not exist.

Three processes, started before anything untrusted exists:

- P, the harness (this process), marks itself not dumpable, so that no other process of the
  run may read its memory or open its file descriptors through /proc.
- Z, a zygote forked by P before P reads anything: it holds only the answer's code and forks a
  fresh answer process on P's request (the first one, and a new one when an answer process
  dies, up to `MAX_ANSWER_PROCESSES`).
- C, an answer process: it closes every channel but its own pair of pipes to P, sets stdin to
  /dev/null, and loads the answer as a module named ``solution`` (not ``__main__``, so its main
  block does not run). Anything the answer's top level raises (SystemExit from
  ``sys.exit(main())`` or ``unittest.main()``, EOFError from ``input()``) is caught; the names
  defined so far stay. C then serves P's requests until P ends it.

Only after Z exists does P read the payload (answer, tests, deadline, nonce) from its pipe, so
no answer process ever holds the tests, in memory or on a descriptor. P compiles the tests
itself (``optimize=0``, so asserts always run), splits them into units (each top-level assert
or check, each ``test_*`` function, each ``unittest.TestCase`` method), and runs each unit with
the answer's top-level names bound to proxies. Calling a proxy sends the call to C; what comes
back is plain data rebuilt in P (numbers, strings, bytes, lists, tuples, dicts, sets and a few
standard-library value types, depth- and size-bounded, never pickle or marshal), an exception
(re-raised in P as the same built-in class, or `RemoteError`), or a handle to an object that
stays in C. A handle never equals plain data and takes part in no arithmetic with it, so an
object whose ``__eq__`` always answers True, or whose ``__sub__`` returns 0, compares as what it
is: not the expected value. Every assert is evaluated by P.

When every unit has run, P kills the answer processes and writes one record, starting with the
run's nonce, on a pipe that only it holds (C closes it before the answer loads). No record, no
pass: the exit status of any process is never the verdict.
"""

from __future__ import annotations

import _ast
import builtins
import collections
import ctypes
import json
import math
import os
import select
import signal
import sys
import time
import types

PR_SET_DUMPABLE = 4
# A message between P and C larger than this ends the answer process (a protocol error).
MAX_MESSAGE_BYTES = 64 << 20
# Bounds of one value sent as data; a larger or deeper value travels as a handle instead.
MAX_DEPTH = 100
MAX_ITEMS = 1_000_000
# Integers with more bits than this travel as hexadecimal text (no digit limit applies there).
SMALL_INT_BITS = 62
# Answer processes per run: the first one and up to two replacements after one died.
MAX_ANSWER_PROCESSES = 3
MESSAGE_CHARS = 300
NAME_CHARS = 100
# The record must fit the pipe's buffer so that P's write cannot block (64 KiB on Linux).
MAX_RECORD_BYTES = 60_000
# Time P keeps back from its deadline to end the answer process and write the record.
RECORD_RESERVE_S = 0.2
TESTS_FILE = "<tests>"
# Exit status of a copy of this program started without a payload (an answer's exec).
REEXEC_STATUS = 86
ANSWER_FILE = "solution.py"

# Modules that may be named across the boundary: the peer gets its own copy of them (or of a
# class or function in them) instead of a handle. Modules with side effects at import, or that
# reach files, processes or the network, are not here.
SHARED_MODULES = frozenset({
    "abc", "array", "bisect", "builtins", "cmath", "collections", "collections.abc", "copy",
    "dataclasses", "datetime", "decimal", "enum", "fractions", "functools", "heapq",
    "itertools", "json", "math", "numbers", "operator", "random", "re", "statistics", "string",
    "struct", "textwrap", "typing", "unicodedata",
})
_SHAREABLE_KINDS = (type, types.BuiltinFunctionType, types.FunctionType)
# Exceptions an answer may raise in P's name: built-in Exception subclasses only (SystemExit,
# KeyboardInterrupt and GeneratorExit would stop the harness itself).
_BUILTIN_EXCEPTIONS = {
    name: value for name, value in vars(builtins).items()
    if isinstance(value, type) and issubclass(value, Exception)
}


class RemoteError(Exception):
    """The answer raised an exception that has no built-in equivalent (or SystemExit)."""


class _Stop(BaseException):
    """Harness-internal interrupts: test code's ``except Exception`` cannot swallow them."""


class AnswerDied(_Stop):
    """The answer process ended (exit, kill, signal, memory) while P was waiting on it."""


class AnswerTimeout(_Stop):
    """The answer process was still busy at the run's deadline."""


class HarnessTimeout(_Stop):
    """P's own deadline passed (SIGALRM) while the tests themselves were running."""


class ProtocolError(_Stop):
    """The answer process sent something that is not a well-formed message."""


class TestError(Exception):
    """A unittest test method ended in an error (the message holds unittest's summary)."""


# ---------------------------------------------------------------- framing

def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _read_exact(fd: int, size: int, deadline: float | None) -> bytes:
    chunks = []
    while size:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise AnswerTimeout("deadline")
        chunk = os.read(fd, min(size, 1 << 20))
        if not chunk:
            raise EOFError("pipe closed")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def send_message(fd: int, message: object) -> None:
    """One length-prefixed JSON message (ASCII: lone surrogates travel escaped)."""
    data = json.dumps(message, ensure_ascii=True, separators=(",", ":")).encode("ascii")
    _write_all(fd, len(data).to_bytes(4, "big") + data)


def receive_message(fd: int, deadline: float | None) -> object:
    """The next message; EOFError when the pipe closed, ProtocolError when it is malformed."""
    size = int.from_bytes(_read_exact(fd, 4, deadline), "big")
    if size > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"a message of {size} bytes (limit {MAX_MESSAGE_BYTES})")
    data = _read_exact(fd, size, deadline)
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as err:
        raise ProtocolError(f"malformed message: {type(err).__name__}") from None


# ---------------------------------------------------------------- values across the boundary

class _TooBig(Exception):
    pass


def _short(text: object, limit: int = MESSAGE_CHARS) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _shared_module(name: str) -> types.ModuleType | None:
    if name not in SHARED_MODULES:
        return None
    try:
        __import__(name)
    except ImportError:
        return None
    return sys.modules.get(name)


def _shared_reference(value: object) -> list[object] | None:
    """["M", module] or ["R", module, name] when the peer can use its own copy of `value`."""
    if isinstance(value, types.ModuleType):
        name = getattr(value, "__name__", None)
        if isinstance(name, str) and name in SHARED_MODULES:
            return ["M", name]
        return None
    if not isinstance(value, _SHAREABLE_KINDS):
        return None
    module = getattr(value, "__module__", None)
    name = getattr(value, "__qualname__", None)
    if not (isinstance(module, str) and isinstance(name, str) and module in SHARED_MODULES
            and name.isidentifier()):
        return None
    owner = sys.modules.get(module)
    if owner is None or getattr(owner, name, None) is not value:
        return None
    return ["R", module, name]


def _resolve_reference(item: list[object]) -> object:
    """What a reference from P stands for in C: C's own copy of the module or its member."""
    module = _shared_module(item[1]) if isinstance(item[1], str) else None
    if module is None:
        raise ProtocolError(f"reference to a module that is not shared: {item[1]!r}"[:200])
    if item[0] == "M":
        return module
    name = item[2] if len(item) > 2 else None
    value = getattr(module, name, None) if isinstance(name, str) and name.isidentifier() else None
    if not isinstance(value, _SHAREABLE_KINDS):
        raise ProtocolError(f"reference to something that is not shared: {item[1]}.{name}"[:200])
    return value


# What a reference sent by the answer's process may stand for in P: types whose every call only
# builds data. Any other module or member it names stays the answer's own object, a proxy of
# its copy in C: P never calls, imports or reads an attribute of one of its own objects because
# the answer named it (it could name builtins.exec, eval, getattr, setattr or __import__, and a
# tests' function that calls what it is given would run them in P).
_VALUE_TYPES = frozenset(
    {("builtins", name) for name in ("bool", "bytearray", "bytes", "complex", "dict", "float",
                                     "frozenset", "int", "list", "range", "set", "slice",
                                     "str", "tuple", *_BUILTIN_EXCEPTIONS)}
    | {("collections", name) for name in ("Counter", "OrderedDict", "defaultdict", "deque")}
    | {("fractions", "Fraction"), ("decimal", "Decimal")})


def _answer_reference(peer: Peer, item: list[object]) -> object:
    """What a reference from C stands for in P: a value type of `_VALUE_TYPES`, else a proxy."""
    rest = [x for x in item[1:] if isinstance(x, str) and len(x) <= NAME_CHARS]
    if not (len(rest) == len(item) - 1 == (1 if item[0] == "M" else 2)
            and rest[0] in SHARED_MODULES and (len(rest) == 1 or rest[1].isidentifier())):
        raise ProtocolError(f"reference to something that is not shared: {item[1:]!r}"[:200])
    if tuple(rest) in _VALUE_TYPES:
        value = getattr(_shared_module(rest[0]), rest[1], None)
        if isinstance(value, type):
            return value
    return Proxy(peer, (str(item[0]), *rest), "module" if item[0] == "M" else rest[-1])


class Peer:
    """One end of the P-C channel: it encodes, decodes, and answers the other side's requests.

    `strict` is P's side: proxies of the answer's objects follow `Proxy`'s rules, and the
    answer may only call, iterate, index, measure and compare P's objects (plus read and set
    public attributes of objects whose class the tests defined), never inspect them.
    """

    def __init__(self, read_fd: int, write_fd: int, strict: bool, generation: int = 0) -> None:
        self.read_fd = read_fd
        self.write_fd = write_fd
        self.strict = strict
        self.generation = generation
        self.deadline: float | None = None
        self.objects: dict[int, object] = {}
        self.ids: dict[int, int] = {}  # id(object) -> handle, so one object keeps one handle
        self.dead: str | None = None  # why the peer can no longer be used
        self.ended: str | None = None  # how its process ended, once known
        self.module: object = None  # the answer's module (C), or its proxy (P)
        # P: the first assert of the tests that failed in a tests' function the answer called
        # (the answer may catch the AssertionError; the test has failed all the same).
        self.failed_assert: str | None = None

    # -- encoding
    def encode(self, value: object) -> object:
        """`value` as JSON-ready tagged data; a handle where it is not plain data."""
        try:
            return self._encode(value, 0, [MAX_ITEMS])
        except (_TooBig, RecursionError):
            return self._handle(value)

    def _handle(self, value: object, shadow: object = None) -> list[object]:
        if isinstance(value, Proxy) and value._wc_peer is self:
            return value._wc_ref()
        key = id(value)
        handle = self.ids.get(key)
        if handle is None or self.objects.get(handle) is not value:
            handle = len(self.objects) + 1
            self.objects[handle] = value
            self.ids[key] = handle
        out: list[object] = ["H", handle, _short(type(value).__name__, NAME_CHARS)]
        if shadow is not None:
            out.append(shadow)
        return out

    def _encode(self, value: object, depth: int, budget: list[int]) -> object:
        budget[0] -= 1
        if budget[0] < 0 or depth > MAX_DEPTH:
            raise _TooBig
        kind = type(value)
        if value is None or kind is bool or kind is str:
            return value
        if isinstance(value, int) and kind is int:
            return value if value.bit_length() <= SMALL_INT_BITS else ["I", format(value, "x")]
        if isinstance(value, float) and kind is float:
            return value if math.isfinite(value) \
                else ["N", repr(value)]
        if isinstance(value, Proxy):
            return self._handle(value)
        nested = depth + 1
        if kind is list or kind is tuple or kind is set or kind is frozenset:
            tag = {list: "L", tuple: "T", set: "S", frozenset: "F"}[kind]
            return [tag, *(self._encode(item, nested, budget) for item in value)]  # type: ignore[attr-defined]
        if kind is dict:
            return ["D", *self._pairs(value, nested, budget)]  # type: ignore[arg-type]
        if kind is bytes:
            return ["B", value.hex()]  # type: ignore[attr-defined]
        if kind is bytearray:
            return ["A", value.hex()]  # type: ignore[attr-defined]
        if kind is complex:
            return ["C", self._encode(value.real, nested, budget),  # type: ignore[attr-defined]
                    self._encode(value.imag, nested, budget)]  # type: ignore[attr-defined]
        if kind is range:
            return ["G", value.start, value.stop, value.step]  # type: ignore[attr-defined]
        if kind is collections.OrderedDict:
            return ["OD", *self._pairs(value, nested, budget)]  # type: ignore[arg-type]
        if kind is collections.Counter:
            return ["CT", *self._pairs(value, nested, budget)]  # type: ignore[arg-type]
        if kind is collections.defaultdict:
            return ["DD", *self._pairs(value, nested, budget)]  # type: ignore[arg-type]
        if kind is collections.deque:
            return ["DQ", *(self._encode(item, nested, budget) for item in value)]  # type: ignore[attr-defined]
        fractions = sys.modules.get("fractions")
        if fractions is not None and kind is fractions.Fraction:
            return ["Q", self._encode(value.numerator, nested, budget),  # type: ignore[attr-defined]
                    self._encode(value.denominator, nested, budget)]  # type: ignore[attr-defined]
        decimal = sys.modules.get("decimal")
        if decimal is not None and kind is decimal.Decimal:
            return ["DM", str(value)]
        shared = _shared_reference(value)
        if shared is not None:
            return shared
        # A subclass of a built-in value type travels as a handle that carries its built-in
        # value, read through the base type (the subclass's own methods are not asked).
        base = _builtin_base(value)
        if base is not None:
            return self._handle(value, self._encode(base, nested, budget))
        return self._handle(value)

    def _pairs(self, mapping: dict[object, object], depth: int,
               budget: list[int]) -> list[object]:
        out: list[object] = []
        for key, item in dict.items(mapping):
            out.append(self._encode(key, depth, budget))
            out.append(self._encode(item, depth, budget))
        return out

    # -- decoding
    def decode(self, data: object) -> object:
        try:
            return self._decode(data, 0)
        except _Stop:
            raise
        except Exception as err:  # noqa: BLE001 - anything malformed from the other side
            raise ProtocolError(f"malformed value: {type(err).__name__}: {_short(err, 120)}") \
                from None

    def _decode(self, data: object, depth: int) -> object:
        if depth > MAX_DEPTH + 2:
            raise ProtocolError("value nested too deeply")
        if data is None or isinstance(data, (bool, int, float, str)):
            return data
        if not isinstance(data, list) or not data or not isinstance(data[0], str):
            raise ProtocolError("untagged value")
        tag, rest = data[0], data[1:]
        nested = depth + 1
        if tag == "L":
            return [self._decode(item, nested) for item in rest]
        if tag == "T":
            return tuple(self._decode(item, nested) for item in rest)
        if tag == "S":
            return {self._decode(item, nested) for item in rest}
        if tag == "F":
            return frozenset(self._decode(item, nested) for item in rest)
        if tag in ("D", "OD", "CT", "DD"):
            if len(rest) % 2:
                raise ProtocolError("odd mapping")
            pairs = [(self._decode(rest[i], nested), self._decode(rest[i + 1], nested))
                     for i in range(0, len(rest), 2)]
            if tag == "D":
                return dict(pairs)
            if tag == "OD":
                return collections.OrderedDict(pairs)
            if tag == "CT":
                return collections.Counter(dict(pairs))
            return collections.defaultdict(None, pairs)
        if tag == "DQ":
            return collections.deque(self._decode(item, nested) for item in rest)
        if tag == "I":
            return int(rest[0], 16)
        if tag == "N":
            if rest[0] not in ("nan", "inf", "-inf"):
                raise ProtocolError("bad float")
            return float(rest[0])
        if tag == "B":
            return bytes.fromhex(rest[0])
        if tag == "A":
            return bytearray.fromhex(rest[0])
        if tag == "C":
            return complex(float(self._decode(rest[0], nested)),  # type: ignore[arg-type]
                           float(self._decode(rest[1], nested)))  # type: ignore[arg-type]
        if tag == "G":
            if not all(type(x) is int for x in rest):
                raise ProtocolError("bad range")
            return range(*rest)
        if tag == "Q":
            import fractions
            return fractions.Fraction(self._decode(rest[0], nested),  # type: ignore[call-overload]
                                      self._decode(rest[1], nested))
        if tag == "DM":
            import decimal
            return decimal.Decimal(rest[0])
        if tag in ("M", "R"):
            return _answer_reference(self, data) if self.strict else _resolve_reference(data)
        if tag == "H":  # an object of the other side
            handle, type_name = rest[0], rest[1]
            if type(handle) is not int or not isinstance(type_name, str):
                raise ProtocolError("bad handle")
            shadow = self._decode(rest[2], nested) if len(rest) > 2 else _NO_VALUE
            return Proxy(self, handle, type_name, shadow)
        if tag == "Y":  # one of ours, coming back
            handle = rest[0]
            if isinstance(handle, str):
                if self.strict or self.module is None:
                    raise ProtocolError("name reference sent to the harness")
                return getattr(self.module, handle)
            if type(handle) is not int or handle not in self.objects:
                raise ProtocolError("unknown handle")
            return self.objects[handle]
        raise ProtocolError(f"unknown tag {tag[:20]!r}")

    # -- requests and replies
    def request(self, *message: object,
                originals: tuple[tuple[object, ...], dict[str, object]] | None = None) -> object:
        """Send a request, serve the other side's nested requests, return the reply's value.

        `originals` are a call's arguments: the ones it changed get their new state."""
        if self.dead is not None:
            raise AnswerDied(self.dead)
        self._send(["q", *message])
        while True:
            reply = self._receive()
            if not isinstance(reply, list) or not reply:
                raise ProtocolError("malformed reply")
            kind = reply[0]
            if kind == "q":
                self._send(self.serve(reply[1:]))
            elif kind == "r" and len(reply) >= 2:
                if len(reply) > 2 and originals is not None:
                    self._apply_sync(originals, reply[2])
                return self.decode(reply[1])
            elif kind == "e" and len(reply) >= 4:
                err = self._exception(reply[1], reply[2], reply[3])
                if self.strict and message[0] == "call" and \
                        isinstance(err, (StopIteration, StopAsyncIteration)):
                    # Out of a call it would end the tests' loop (`all(map(check, cases))` with
                    # no case checked): like PEP 479 in a generator, it is an error here.
                    err = RuntimeError(f"the answer's call raised {type(err).__name__}"
                                       f"{getattr(err, 'remote_where', '')}")
                raise err
            else:
                raise ProtocolError("unknown reply")

    def _send(self, message: object) -> None:
        try:
            send_message(self.write_fd, message)
        except (BrokenPipeError, OSError) as err:
            raise self._died(f"cannot write to it ({err.strerror})") from None

    def _receive(self) -> object:
        try:
            return receive_message(self.read_fd, self.deadline)
        except EOFError:
            raise self._died("it closed its pipe") from None
        except ProtocolError as err:
            self.dead = f"protocol error: {err}"
            raise

    def _died(self, how: str) -> AnswerDied:
        self.dead = how
        return AnswerDied(how)

    def _exception(self, names: object, message: object, where: object) -> BaseException:
        names = names if isinstance(names, list) else []
        text = _short(message if isinstance(message, str) else "", 1000)
        place = f" ({_short(where, 120)})" if isinstance(where, str) and where else ""
        for name in names:
            cls = _BUILTIN_EXCEPTIONS.get(name) if isinstance(name, str) else None
            if cls is None:
                continue
            try:
                err = cls(text) if text else cls()
            except Exception:  # noqa: BLE001, S112 - classes with other signatures
                continue
            err.remote_where = place  # type: ignore[attr-defined]
            return err
        first = names[0] if names and isinstance(names[0], str) else "Exception"
        err = RemoteError(f"{_short(first, NAME_CHARS)}: {text}" if text else first)
        err.remote_where = place  # type: ignore[attr-defined]
        return err

    def _apply_sync(self, originals: tuple[tuple[object, ...], dict[str, object]],
                    sync: object) -> None:
        """Mutable arguments (list, dict, set, bytearray) the call changed get the new state."""
        if not isinstance(sync, list):
            raise ProtocolError("bad argument update")
        args, kwargs = originals
        for item in sync:
            if not isinstance(item, list) or len(item) != 2:
                raise ProtocolError("bad argument update")
            where, data = item
            if type(where) is int and isinstance(args, tuple) and 0 <= where < len(args):
                target = args[where]
            elif isinstance(where, str) and isinstance(kwargs, dict) and where in kwargs:
                target = kwargs[where]
            else:
                raise ProtocolError("bad argument update")
            new = self.decode(data)
            if ((type(target) is list and type(new) is list)
                    or (type(target) is bytearray and type(new) is bytearray)):
                target[:] = new
            elif type(target) in (dict, set) and type(new) is type(target):
                target.clear()  # type: ignore[attr-defined]
                target.update(new)  # type: ignore[attr-defined]

    def serve(self, message: list[object]) -> list[object]:
        """Run one request of the other side; the reply (value or exception) to send back."""
        try:
            op = message[0]
            if op == "call":
                target = self._target(message[1])
                args = self.decode(message[2])
                kwargs = self.decode(message[3])
                if not isinstance(args, tuple) or not isinstance(kwargs, dict):
                    raise ProtocolError("bad call")
                if self.strict:
                    self._check_exposed(target, "call")
                value = target(*args, **kwargs)  # type: ignore[operator]
                return ["r", self.encode(value), self._sync(message[2:4], args, kwargs)]
            if op == "lookup" and not self.strict:
                name = message[2]
                if not isinstance(name, str):
                    raise ProtocolError("bad lookup")
                return ["r", _name_value(self, name, getattr(self.module, name))]
            target = self._target(message[1])
            if self.strict:
                self._check_exposed(target, op, message)
            value = _operate(target, op, [self.decode(m) for m in message[2:]])
            return ["r", self.encode(value)]
        except _Stop:
            raise
        except BaseException as err:  # noqa: BLE001 - reported to the other side
            if self.strict and isinstance(err, AssertionError) and self.failed_assert is None \
                    and not hasattr(err, "remote_where"):  # the tests' assert, not the answer's
                self.failed_assert = _assertion_message(err)
            return self._error_reply(err)

    def _target(self, data: object) -> object:
        """The object a request of the other side acts on.

        In P it can only be one of P's own objects that P handed to the answer (a "Y" handle
        of its table): every message of the answer's process is the answer's, so nothing else
        it sends (a reference, a name) ever becomes something P calls or inspects."""
        if not self.strict:
            return self.decode(data)
        if isinstance(data, list) and len(data) == 2 and data[0] == "Y" \
                and type(data[1]) is int and data[1] in self.objects:
            return self.objects[data[1]]
        raise ProtocolError("a request on an object that the harness did not give the answer")

    def _check_exposed(self, target: object, op: object,
                       message: list[object] | None = None) -> None:
        """What the answer may do with P's objects: no introspection of the tests."""
        if op in ("call", "iter", "next", "len", "getitem", "contains", "bool", "eq", "hash",
                  "str", "repr"):
            return
        if op == "binop" and message is not None and len(message) > 2 and \
                message[2] in ("lt", "le", "gt", "ge", "eq", "ne"):
            return
        if op in ("getattr", "setattr") and message is not None and len(message) > 2:
            name = message[2]
            # The harness runs as __main__ too: its own classes are not the tests'.
            tests_class = getattr(type(target), "__module__", None) == "__main__" \
                and type(target) not in _HARNESS_TYPES
            if isinstance(name, str) and not name.startswith("_") and tests_class \
                    and not isinstance(target, type) \
                    and (op == "getattr" or not _class_behaviour(type(target), name)):
                return
        raise AttributeError("the tests' objects are not open to the answer")

    def _sync(self, raw: list[object], args: tuple[object, ...],
              kwargs: dict[str, object]) -> list[object]:
        updates: list[object] = []
        raw_args, raw_kwargs = raw
        if not isinstance(raw_args, list) or not isinstance(raw_kwargs, list):
            return updates
        for i, value in enumerate(args):
            if type(value) in (list, dict, set, bytearray) and i + 1 < len(raw_args):
                now = self.encode(value)
                if now != raw_args[i + 1]:
                    updates.append([i, now])
        names = list(kwargs)
        for i, name in enumerate(names):
            value = kwargs[name]
            if type(value) in (list, dict, set, bytearray) and 2 * i + 2 < len(raw_kwargs):
                now = self.encode(value)
                if now != raw_kwargs[2 * i + 2]:
                    updates.append([name, now])
        return updates

    def _error_reply(self, err: BaseException) -> list[object]:
        names = [cls.__name__ for cls in type(err).__mro__]
        try:
            message = str(err)
        except Exception:  # noqa: BLE001 - a broken __str__
            message = ""
        return ["e", names, _short(message, 1000), _where(err.__traceback__)]


_NO_VALUE = object()


def _class_behaviour(cls: type, name: str) -> bool:
    """True when `name` is a method or descriptor of `cls` (`assertEqual` of a TestCase): the
    answer may set data attributes of the tests' objects, never replace how they behave."""
    import inspect
    value = inspect.getattr_static(cls, name, _NO_VALUE)
    return value is not _NO_VALUE and (callable(value) or hasattr(type(value), "__set__"))


def _where(tb: types.TracebackType | None) -> str:
    """The innermost line of the answer's code in a traceback: "solution.py line 3, in f"."""
    found = ""
    while tb is not None:
        code = tb.tb_frame.f_code
        if code.co_filename == ANSWER_FILE:
            found = f"{ANSWER_FILE} line {tb.tb_lineno}, in {code.co_name}"
        tb = tb.tb_next
    return found


def _operate(target: object, op: object, args: list[object]) -> object:
    if op == "getattr":
        return getattr(target, args[0])  # type: ignore[call-overload]
    if op == "setattr":
        setattr(target, args[0], args[1])  # type: ignore[arg-type]
        return None
    if op == "delattr":
        delattr(target, args[0])  # type: ignore[arg-type]
        return None
    if op == "iter":
        return iter(target)  # type: ignore[call-overload]
    if op == "next":
        return next(target)  # type: ignore[call-overload]
    if op == "len":
        return len(target)  # type: ignore[arg-type]
    if op == "getitem":
        return target[args[0]]  # type: ignore[index]
    if op == "setitem":
        target[args[0]] = args[1]  # type: ignore[index]
        return None
    if op == "delitem":
        del target[args[0]]  # type: ignore[attr-defined]
        return None
    if op == "contains":
        return args[0] in target  # type: ignore[operator]
    if op == "bool":
        return bool(target)
    if op == "str":
        return str(target)
    if op == "repr":
        return repr(target)
    if op == "hash":
        return hash(target)
    if op == "eq":
        return bool(target == args[0])
    if op == "lt":
        return bool(target < args[0])  # type: ignore[operator]
    if op == "binop":
        import operator
        name = args[0]
        if not (isinstance(name, str) and name.isidentifier() and hasattr(operator, name)):
            raise ProtocolError("bad operator")
        return getattr(operator, name)(target, args[1])
    raise ProtocolError(f"unknown request {str(op)[:20]!r}")


def _builtin_base(value: object) -> object:
    """The built-in value inside an instance of a subclass of a built-in type, else None.

    By the real type (`type()`, which `__class__` tricks cannot change), read through the base
    type's own methods."""
    kind = type(value)
    if issubclass(kind, int) and not issubclass(kind, bool):
        return int.__index__(value)  # type: ignore[arg-type]
    if issubclass(kind, float):
        return float.__float__(value)  # type: ignore[arg-type]
    if issubclass(kind, str):
        return str.__str__(value)  # type: ignore[arg-type]
    if issubclass(kind, bytes):
        return bytes(memoryview(value))  # type: ignore[arg-type]
    if issubclass(kind, list):
        return list(list.__iter__(value))  # type: ignore[arg-type]
    if issubclass(kind, tuple):
        return tuple(tuple.__iter__(value))  # type: ignore[arg-type]
    if issubclass(kind, dict):
        return dict(dict.items(value))  # type: ignore[arg-type]
    if issubclass(kind, frozenset):
        return frozenset(frozenset.__iter__(value))  # type: ignore[arg-type]
    if issubclass(kind, set):
        return set(set.__iter__(value))  # type: ignore[arg-type]
    return None


# ---------------------------------------------------------------- proxies

def _plain(value: object) -> object:
    """The value to compare: a proxy's built-in value, or the value itself."""
    if isinstance(value, Proxy):
        return object.__getattribute__(value, "_wc_value")
    return value


class Proxy:
    """An object that lives on the other side of the channel.

    In P (strict) the answer's objects follow these rules: equality with plain data is False
    and ordering or arithmetic with plain data is a TypeError, unless the object is an instance
    of a subclass of a built-in value type, which then compares and computes as its built-in
    value (read in C through the base type). Two of the answer's objects compare and compute
    by asking the answer (both sides are the answer's word). Attribute access, calls, indexing,
    iteration, len, bool and str go to the answer.
    """

    __slots__ = ("_wc_generation", "_wc_id", "_wc_peer", "_wc_type", "_wc_value")
    _wc_peer: Peer
    # An int handle, a top-level name (str), or a reference to a shared module or one of its
    # members that the answer named ("R", module, name): C's own copy.
    _wc_id: int | str | tuple[str, ...]
    _wc_type: str
    _wc_value: object
    _wc_generation: int

    def __init__(self, peer: Peer, handle: int | str | tuple[str, ...], type_name: str,
                 value: object = _NO_VALUE) -> None:
        object.__setattr__(self, "_wc_peer", peer)
        object.__setattr__(self, "_wc_id", handle)
        object.__setattr__(self, "_wc_type", type_name)
        object.__setattr__(self, "_wc_value", value)
        object.__setattr__(self, "_wc_generation", peer.generation)

    def _wc_ref(self) -> list[object]:
        peer = self._wc_peer
        if isinstance(self._wc_id, int) and self._wc_generation != peer.generation:
            raise AnswerDied("an object of an earlier answer process, which has ended")
        if isinstance(self._wc_id, tuple):
            return list(self._wc_id)
        return ["Y", self._wc_id]

    def _wc_ask(self, op: str, *args: object) -> object:
        peer = self._wc_peer
        return peer.request(op, self._wc_ref(), *(peer.encode(a) for a in args))

    def _wc_has_value(self) -> bool:
        return self._wc_value is not _NO_VALUE

    @property  # type: ignore[misc]
    def __class__(self) -> type:  # isinstance() reads it
        """An instance of a subclass of a built-in type is an instance of that type to the
        tests (`isinstance(f(x), int)`); `type()` still says Proxy. Only the answer's value,
        which P compares as its own plain copy, stands behind it."""
        value = object.__getattribute__(self, "_wc_value")
        return Proxy if value is _NO_VALUE else type(value)

    def __getattr__(self, name: str) -> object:
        if name.startswith("_wc_"):
            raise AttributeError(name)
        return self._wc_ask("getattr", name)

    def __setattr__(self, name: str, value: object) -> None:
        self._wc_ask("setattr", name, value)

    def __delattr__(self, name: str) -> None:
        self._wc_ask("delattr", name)

    def __call__(self, *args: object, **kwargs: object) -> object:
        peer = self._wc_peer
        return peer.request("call", self._wc_ref(), peer.encode(args), peer.encode(kwargs),
                            originals=(args, kwargs))

    def __iter__(self) -> object:
        if self._wc_has_value():
            return iter(self._wc_value)  # type: ignore[call-overload]
        return _Iterator(self._wc_ask("iter"))

    def __next__(self) -> object:
        return self._wc_ask("next")

    def __len__(self) -> int:
        if self._wc_has_value():
            return len(self._wc_value)  # type: ignore[arg-type]
        value = self._wc_ask("len")
        if type(value) is not int:
            raise TypeError("len() of an answer's object did not give an int")
        return value

    def __getitem__(self, key: object) -> object:
        if self._wc_has_value():
            return self._wc_value[key]  # type: ignore[index]
        return self._wc_ask("getitem", key)

    def __setitem__(self, key: object, value: object) -> None:
        self._wc_ask("setitem", key, value)

    def __delitem__(self, key: object) -> None:
        self._wc_ask("delitem", key)

    def __contains__(self, item: object) -> bool:
        if self._wc_has_value():
            return item in self._wc_value  # type: ignore[operator]
        return self._wc_ask("contains", item) is True

    def __bool__(self) -> bool:
        if self._wc_has_value():
            return bool(self._wc_value)
        return self._wc_ask("bool") is True

    def __str__(self) -> str:
        return self._wc_text("str")

    def __repr__(self) -> str:
        return self._wc_text("repr")

    def _wc_text(self, op: str) -> str:
        try:
            value = self._wc_ask(op)
        except BaseException:  # noqa: BLE001 - printing must not fail a report
            value = None
        if isinstance(value, str):
            return value
        return f"<answer's {self._wc_type} object>"

    def __hash__(self) -> int:
        if self._wc_has_value():
            return hash(self._wc_value)
        return hash((id(self._wc_peer), self._wc_id))

    def __eq__(self, other: object) -> bool:
        if self._wc_has_value():
            return bool(self._wc_value == _plain(other))
        if isinstance(other, Proxy) and other._wc_peer is self._wc_peer:
            if other._wc_id == self._wc_id:
                return True
            if other._wc_has_value():
                return False
            return self._wc_ask("eq", other) is True
        return False

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def _wc_order(self, other: object, op: str) -> object:
        import operator
        if self._wc_has_value():
            return getattr(operator, op)(self._wc_value, _plain(other))
        if isinstance(other, Proxy) and not other._wc_has_value():
            return self._wc_ask("binop", op, other)
        raise TypeError(f"'{op}' between an answer's {self._wc_type} object and "
                        f"{type(other).__name__}: not comparable in the harness")

    def __lt__(self, other: object) -> object:
        return self._wc_order(other, "lt")

    def __le__(self, other: object) -> object:
        return self._wc_order(other, "le")

    def __gt__(self, other: object) -> object:
        return self._wc_order(other, "gt")

    def __ge__(self, other: object) -> object:
        return self._wc_order(other, "ge")

    def __enter__(self) -> object:
        return self.__getattr__("__enter__")()  # type: ignore[operator]

    def __exit__(self, *exc: object) -> object:
        return self.__getattr__("__exit__")(None, None, None)  # type: ignore[operator]

    def __int__(self) -> int:
        return int(self._wc_number())  # type: ignore[call-overload]

    def __float__(self) -> float:
        return float(self._wc_number())  # type: ignore[arg-type]

    def __index__(self) -> int:
        import operator
        return operator.index(self._wc_number())  # type: ignore[arg-type]

    def __abs__(self) -> object:
        return abs(self._wc_number())  # type: ignore[arg-type]

    def __neg__(self) -> object:
        return -self._wc_number()  # type: ignore[operator]

    def __pos__(self) -> object:
        return +self._wc_number()  # type: ignore[operator]

    def __round__(self, digits: int | None = None) -> object:
        return round(self._wc_number(), digits)  # type: ignore[call-overload]

    def _wc_number(self) -> object:
        if self._wc_has_value():
            return self._wc_value
        raise TypeError(f"an answer's {self._wc_type} object is not a number in the harness")


def _binary(name: str, reflected: bool = False) -> object:
    def method(self: Proxy, other: object) -> object:
        import operator
        if self._wc_has_value():
            left, right = (_plain(other), self._wc_value) if reflected else \
                (self._wc_value, _plain(other))
            return getattr(operator, name)(left, right)
        if isinstance(other, Proxy) and not other._wc_has_value() and not reflected:
            return self._wc_ask("binop", name, other)
        raise TypeError(f"'{name}' with an answer's {self._wc_type} object and "
                        f"{type(other).__name__}: not computed in the harness")
    return method


for _name in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "and", "or", "xor",
              "lshift", "rshift", "matmul"):
    _op = "and_" if _name == "and" else "or_" if _name == "or" else _name
    setattr(Proxy, f"__{_name}__", _binary(_op))
    setattr(Proxy, f"__r{_name}__", _binary(_op, reflected=True))


class _Iterator:
    """What iter() of an answer's object gives in P: next() asks the answer."""

    __slots__ = ("_target",)

    def __init__(self, target: object) -> None:
        self._target = target

    def __iter__(self) -> _Iterator:
        return self

    def __next__(self) -> object:
        target = self._target
        if isinstance(target, Proxy):
            return target._wc_ask("next")
        return next(target)  # type: ignore[call-overload]


# ---------------------------------------------------------------- the answer process (C)

def _answer_process(code: str, read_fd: int, write_fd: int) -> None:
    """Load the answer as module `solution`, report its names, then serve P. Never returns."""
    try:
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
    except OSError:
        pass
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for name in ("SIGTERM", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGALRM"):
        signal.signal(getattr(signal, name), signal.SIG_DFL)
    peer = Peer(read_fd, write_fd, strict=False)
    module = types.ModuleType("solution")
    module.__file__ = ANSWER_FILE
    sys.modules["solution"] = module
    peer.module = module
    handlers_before = _atexit_handlers()
    load_error = _load(code, module.__dict__)
    names: dict[str, object] = {}
    for name, value in list(module.__dict__.items()):
        if isinstance(name, str) and not (name.startswith("__") and name.endswith("__")):
            ref = _shared_reference(value)
            names[name] = ref if ref is not None else _name_value(peer, name, value)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001, S110 - the answer may have closed them
            pass
    try:
        send_message(write_fd, ["loaded", load_error, names, _tampering(handlers_before)])
        while True:
            message = receive_message(read_fd, None)
            if not isinstance(message, list) or not message or message[0] != "q":
                os._exit(3)
            send_message(write_fd, peer.serve(message[1:]))
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except BaseException:  # noqa: BLE001, S110
                    pass
    except BaseException:  # noqa: BLE001 - P is gone or sent garbage: end
        os._exit(0)


def _atexit_handlers() -> int:
    try:
        import atexit
        return int(atexit._ncallbacks())
    except (ImportError, AttributeError):
        return 0


def _tampering(handlers_before: int) -> str:
    """What the answer's top level did that would have spoken for it in one program."""
    done = []
    if sys.excepthook is not sys.__excepthook__:
        done.append("replaced sys.excepthook")
    handlers = _atexit_handlers() - handlers_before
    if handlers > 0:
        done.append(f"registered {handlers} atexit handler(s)")
    if not done:
        return ""
    return f"the answer {' and '.join(done)}: the harness ignores that"


def _load(code: str, namespace: dict[str, object]) -> str:
    """Run the answer's top level one statement at a time; "" or its first error.

    A statement that raises (``input()`` at EOF, ``sys.exit(main())``, ``unittest.main()``,
    demo code) is recorded and the next one still runs, so definitions after it exist.
    """
    try:
        tree = compile(code, ANSWER_FILE, "exec", _ast.PyCF_ONLY_AST, dont_inherit=True)
    except BaseException as err:  # noqa: BLE001 - SyntaxError, ValueError (NUL), ...
        return _describe(err)
    import __future__
    flags = 0
    first_error = ""
    for statement in tree.body:  # type: ignore[attr-defined]
        if isinstance(statement, _ast.ImportFrom) and statement.module == "__future__":
            for alias in statement.names:
                feature = getattr(__future__, alias.name, None)
                flags |= getattr(feature, "compiler_flag", 0)
        try:
            unit = compile(_ast.Module(body=[statement], type_ignores=[]), ANSWER_FILE, "exec",
                           flags=flags, dont_inherit=True)
            exec(unit, namespace)  # noqa: S102 - the answer, in C
        except BaseException as err:  # noqa: BLE001 - recorded; the next statement runs
            first_error = first_error or _describe(err)
    return first_error


def _name_value(peer: Peer, name: str, value: object) -> object:
    """A top-level name as P sees it: data, or a proxy that finds it by name in C."""
    if callable(value) or isinstance(value, types.ModuleType):
        return ["H", name, _short(type(value).__name__, NAME_CHARS)]
    encoded = peer.encode(value)
    if isinstance(encoded, list) and encoded and encoded[0] == "H":
        return ["H", name, *encoded[2:]]
    return encoded


def _describe(err: BaseException) -> str:
    """"SystemExit: 0 (solution.py line 9, in <module>)"."""
    try:
        text = str(err)
    except Exception:  # noqa: BLE001
        text = ""
    where = _where(err.__traceback__)
    head = f"{type(err).__name__}: {text}" if text else type(err).__name__
    return _short(f"{head} ({where})" if where else head)


# ---------------------------------------------------------------- the zygote (Z)

def _zygote(code_fd: int, reply_fd: int, pairs: list[tuple[int, int, int, int]]) -> None:
    """Fork answer processes on request: "spawn K" -> "pid N"; "wait K" -> "status S".

    Never returns. Holds only the answer's code (sent by P) and the answer processes' pipes.
    """
    pids: dict[int, int] = {}
    code = ""
    try:
        while True:
            message = receive_message(code_fd, None)
            if not isinstance(message, list):
                break
            if message[0] == "code":
                code = message[1]
            elif message[0] == "spawn":
                k = message[1]
                pid = os.fork()
                if pid == 0:
                    c_read, c_write = pairs[k][0], pairs[k][3]
                    keep = {c_read, c_write, 1, 2}
                    for fd in {code_fd, reply_fd, *[f for pair in pairs for f in pair]} - keep:
                        _close(fd)
                    _answer_process(code, c_read, c_write)
                    os._exit(0)
                pids[k] = pid
                _close(pairs[k][0])
                _close(pairs[k][3])
                send_message(reply_fd, ["pid", pid])
            elif message[0] == "wait":
                _, status = os.waitpid(pids[message[1]], 0)
                send_message(reply_fd, ["status", status])
    except BaseException:  # noqa: BLE001, S110 - P is gone: end with it
        pass
    for pid in pids.values():
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    os._exit(0)


def _close(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


def _set_not_dumpable() -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    except (OSError, AttributeError):
        pass


# ---------------------------------------------------------------- the tests (in P)

def _walk(node: object) -> list[object]:
    """Every AST node under `node` (iterative: no recursion limit on deep trees)."""
    out, todo = [], [node]
    while todo:
        item = todo.pop()
        out.append(item)
        for field in getattr(item, "_fields", ()):
            child = getattr(item, field, None)
            if isinstance(child, list):
                todo.extend(c for c in child if isinstance(c, _ast.AST))
            elif isinstance(child, _ast.AST):
                todo.append(child)
    return out


def _asserts(node: object) -> bool:
    return any(isinstance(n, _ast.Assert) for n in _walk(node))


def _is_main_guard(node: object) -> bool:
    if not isinstance(node, _ast.If) or not isinstance(node.test, _ast.Compare):
        return False
    names = [node.test.left, *node.test.comparators]
    return any(isinstance(n, _ast.Name) and n.id == "__name__" for n in names)


def _called_name(node: object) -> str | None:
    if isinstance(node, _ast.Expr) and isinstance(node.value, _ast.Call):
        func = node.value.func
        if isinstance(func, _ast.Name):
            return func.id
        if isinstance(func, _ast.Attribute) and isinstance(func.value, _ast.Name):
            return f"{func.value.id}.{func.attr}"
    return None


def _is_test_case(node: object) -> bool:
    if not isinstance(node, _ast.ClassDef):
        return False
    for base in node.bases:
        name = base.attr if isinstance(base, _ast.Attribute) else \
            base.id if isinstance(base, _ast.Name) else ""
        if name.endswith("TestCase"):
            return True
    return False


def split_tests(source: str, runner: str = "__wc_unittest__") -> list[tuple[str, list[object]]]:
    """The tests as units: (name, statements), in order. SyntaxError when they do not parse.

    A unit is a checking statement (one that asserts, or calls a function the tests defined)
    with the plain statements before it (test data, imports, definitions). A ``test_*``
    function without arguments that the tests never call runs as its own unit at the end, and
    so does each test method of a ``unittest.TestCase`` class (``unittest.main()`` is left
    out: the harness runs the methods). ``if __name__ == "__main__":`` bodies count as top
    level. Trailing plain statements are a unit of their own; tests with no check at all are
    one unit. A test method's unit calls `runner(case, "method")`.
    """
    tree = compile(source, TESTS_FILE, "exec", _ast.PyCF_ONLY_AST, dont_inherit=True)
    lines = source.splitlines()
    statements: list[object] = []
    for node in tree.body:  # type: ignore[attr-defined]
        statements.extend(node.body if _is_main_guard(node) else [node])
    defined: dict[str, object] = {}
    called: set[str] = set()
    units: list[tuple[str, list[object]]] = []
    pending: list[object] = []
    test_cases: list[object] = []
    for node in statements:
        name = _called_name(node)
        if name in ("unittest.main", "main") and (name == "unittest.main" or "main" not in
                                                  defined):
            continue
        if isinstance(node, (_ast.FunctionDef, _ast.AsyncFunctionDef)):
            defined[node.name] = node
        if _is_test_case(node):
            test_cases.append(node)
        checking = (isinstance(node, (_ast.Assert, _ast.For, _ast.While, _ast.With, _ast.If,
                                      _ast.Try)) and _asserts(node)) or name in defined
        pending.append(node)
        if checking:
            if name is not None:
                called.add(name)
            units.append((_unit_name(node, lines), pending))
            pending = []
    for name, node in defined.items():
        args = node.args  # type: ignore[attr-defined]
        if name.startswith("test") and name not in called and not (
                args.args or args.posonlyargs or args.kwonlyargs or args.vararg) \
                and isinstance(node, _ast.FunctionDef):
            pending.append(_call_statement(name, node))
            units.append((name, pending))
            pending = []
    for case in test_cases:
        for item in case.body:  # type: ignore[attr-defined]
            if isinstance(item, _ast.FunctionDef) and item.name.startswith("test"):
                pending.append(_call_statement(
                    runner, item, case.name, item.name, strings=True))  # type: ignore[attr-defined]
                units.append((f"{case.name}.{item.name}", pending))  # type: ignore[attr-defined]
                pending = []
    if pending:
        units.append((_unit_name(pending[0], lines) if units else "tests", pending))
    return units


def _call_statement(function: str, where: object, *arguments: str,
                    strings: bool = False) -> object:
    """The statement `function(*arguments)` placed at `where`'s line: the arguments are names,
    or with `strings` the first is a name and the others are string constants."""
    call = _ast.Call(func=_ast.Name(id=function, ctx=_ast.Load()),
                     args=[_ast.Constant(value=a) if strings and i else
                           _ast.Name(id=a, ctx=_ast.Load()) for i, a in enumerate(arguments)],
                     keywords=[])
    statement = _ast.Expr(value=call)
    for node in (statement, call, call.func, *call.args):
        node.lineno = node.end_lineno = where.lineno  # type: ignore[attr-defined]
        node.col_offset = node.end_col_offset = 0  # type: ignore[attr-defined]
    return statement


def _unit_name(node: object, lines: list[str]) -> str:
    number = getattr(node, "lineno", 0)
    text = lines[number - 1].strip() if 0 < number <= len(lines) else type(node).__name__
    return _short(f"line {number}: {text}", NAME_CHARS)


def _run_unittest(case: object, method: str) -> None:
    """One unittest test method; AssertionError or TestError with unittest's last line."""
    import unittest
    result = unittest.TestResult()
    case(method).run(result)  # type: ignore[operator]
    for _, text in result.failures:
        line = _last_line(text)
        raise AssertionError(line.removeprefix("AssertionError: "))
    for _, text in result.errors:
        raise TestError(_last_line(text))


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


# ---------------------------------------------------------------- the harness (P)

class Harness:
    """P: runs the test units against answer processes and writes the record."""

    def __init__(self, zygote_write: int, zygote_read: int,
                 pairs: list[tuple[int, int, int, int]]) -> None:
        self.zygote_write = zygote_write
        self.zygote_read = zygote_read
        self.pairs = pairs
        self.spawned = 0
        self.peer: Peer | None = None
        self.pid = 0
        self.deadline = 0.0
        self.load_error = ""
        self.tampering = ""
        self.names: dict[str, object] = {}
        self.gone_for_good = ""

    def spawn(self) -> bool:
        """A fresh answer process; False (with `gone_for_good` set) when none can be had."""
        if self.spawned >= len(self.pairs):
            self.gone_for_good = (f"not run: the answer process ended {self.spawned} times "
                                  "and is not started again")
            return False
        k = self.spawned
        self.spawned += 1
        send_message(self.zygote_write, ["spawn", k])
        reply = receive_message(self.zygote_read, self.deadline)
        if not (isinstance(reply, list) and reply[0] == "pid" and type(reply[1]) is int):
            raise ProtocolError("zygote failed")
        self.pid = reply[1]
        peer = Peer(self.pairs[k][2], self.pairs[k][1], strict=True, generation=k)
        peer.deadline = self.deadline
        self.peer = peer
        try:
            loaded = receive_message(peer.read_fd, self.deadline)
        except AnswerTimeout:
            self.kill()
            self.gone_for_good = "not run: loading the answer took the whole time limit"
            raise
        except (EOFError, ProtocolError) as err:
            how = self.ended(peer, err)
            self.gone_for_good = f"not run: the answer process {how} while loading the answer"
            return False
        if not (isinstance(loaded, list) and len(loaded) == 4 and loaded[0] == "loaded"
                and isinstance(loaded[2], dict)):
            self.kill()
            self.gone_for_good = "not run: the answer process sent no names"
            return False
        if k == 0:
            self.load_error = _short(loaded[1]) if isinstance(loaded[1], str) else ""
            self.tampering = _short(loaded[3]) if isinstance(loaded[3], str) else ""
        names: dict[str, object] = {}
        for name, data in loaded[2].items():
            # The answer's process filters nothing for P: its names are checked here. Dunders
            # (__builtins__, __name__, __path__, the unittest runner) are never the answer's.
            if not name.isidentifier() or name.startswith("__"):
                continue
            if isinstance(data, list) and data and data[0] == "H" and isinstance(data[1], str):
                # A top-level callable: found by name in whichever answer process is current.
                names[name] = Proxy(peer, name, _short(data[2], NAME_CHARS) if len(data) > 2
                                    and isinstance(data[2], str) else "object",
                                    peer.decode(data[3]) if len(data) > 3 else _NO_VALUE)
            else:
                names[name] = peer.decode(data)
        if k == 0:
            self.names = names
        else:
            for value in self.names.values():
                if isinstance(value, Proxy) and isinstance(value._wc_id, (str, tuple)):
                    object.__setattr__(value, "_wc_peer", peer)
                    object.__setattr__(value, "_wc_generation", peer.generation)
        return True

    def ended(self, peer: Peer, err: BaseException | None = None) -> str:
        """How the answer process ended ("exited with status 0 (os._exit?)", ...)."""
        if peer.ended is None:
            peer.ended = self._ended(peer, err)
        return peer.ended

    def _ended(self, peer: Peer, err: BaseException | None) -> str:
        if isinstance(err, ProtocolError) or (peer.dead or "").startswith("protocol error"):
            self.kill()
            return f"sent a malformed message and was ended ({peer.dead or err})"
        # The zygote reaps it; it may itself be gone (the answer can kill it): then "ended".
        try:
            send_message(self.zygote_write, ["wait", peer.generation])
            try:
                now = time.monotonic()
                reply = receive_message(self.zygote_read,
                                        max(min(self.deadline, now + 1.0), now + 0.2))
            except AnswerTimeout:  # it closed its pipe but runs on: end it, then ask again
                self.kill()
                reply = receive_message(self.zygote_read, time.monotonic() + 0.5)
        except (_Stop, EOFError, OSError):
            self.kill()
            return "ended"
        status = reply[1] if isinstance(reply, list) and len(reply) == 2 else None
        if type(status) is not int:
            return "ended"
        if os.WIFSIGNALED(status):
            number = os.WTERMSIG(status)
            try:
                name = signal.Signals(number).name
            except ValueError:
                name = f"signal {number}"
            return f"was killed by {name}"
        code = os.waitstatus_to_exitcode(status)
        hint = " (os._exit?)" if code == 0 else \
            " (it re-executed the program with exec)" if code == REEXEC_STATUS else ""
        return f"exited with status {code}{hint}"

    def kill(self) -> None:
        if self.pid:
            if self.peer is not None and self.peer.dead is None:
                self.peer.dead = "ended by the harness"
            try:
                os.kill(self.pid, signal.SIGKILL)
            except OSError:
                pass

    def run_unit(self, index: int, name: str, code: types.CodeType,
                 namespace: dict[str, object]) -> list[str]:
        """[name, status, message] of one unit: passed, failed, error or timeout."""
        if self.peer is None or self.peer.dead is not None:
            try:
                if self.gone_for_good or not self.spawn():
                    return [name, "error", self.gone_for_good]
            except AnswerTimeout:
                self.kill()
                self.gone_for_good = "not run: the time limit was reached"
                return [name, "timeout", ("a new answer process was still loading the answer "
                                         "at the time limit")]
            except (_Stop, EOFError, OSError) as err:
                self.kill()
                self.gone_for_good = ("not run: no new answer process could be started "
                                      f"({type(err).__name__})")
                return [name, "error", self.gone_for_good]
        peer = self.peer
        assert peer is not None
        peer.failed_assert = None
        try:
            exec(code, namespace)  # noqa: S102 - the tests, in P
        except AssertionError as err:
            return [name, "failed", _assertion_message(err)]
        except AnswerTimeout:
            self.kill()
            self.gone_for_good = "not run: the time limit was reached"
            return [name, "timeout", (f"the answer was still running at the time limit, "
                                      f"during test {index + 1}")]
        except HarnessTimeout:
            self.kill()
            self.gone_for_good = "not run: the time limit was reached"
            return [name, "timeout", f"test {index + 1} was still running at the time limit"]
        except AnswerDied as err:
            if peer.dead is None:  # an object of an earlier answer process was used
                return [name, "error", _short(err)]
            how = self.ended(peer)
            return [name, "error", f"the answer process {how} during test {index + 1}"]
        except ProtocolError as err:
            self.kill()
            return [name, "error", (f"the answer process sent a malformed message during "
                                    f"test {index + 1}: {err}")]
        except SystemExit as err:
            if err.code in (None, 0):
                return self._after(peer, index, [name, "passed", ""])
            return [name, "failed", _short(f"SystemExit: {err.code}")]
        except BaseException as err:  # noqa: BLE001 - the unit's error
            return self._after(peer, index, [name, "error", _error_message(err)])
        return self._after(peer, index, [name, "passed", ""])

    def _after(self, peer: Peer, index: int, outcome: list[str]) -> list[str]:
        # Test code may have swallowed the harness's own interrupts (a bare except, unittest).
        if peer.dead is not None:
            how = self.ended(peer)
            return [outcome[0], "error", f"the answer process {how} during test {index + 1}"]
        if peer.failed_assert is not None and outcome[1] == "passed":
            return [outcome[0], "failed", _short(f"{peer.failed_assert} (in a function of the "
                                                 "tests that the answer called)")]
        if time.monotonic() >= self.deadline:
            self.kill()
            self.gone_for_good = "not run: the time limit was reached"
            return [outcome[0], "timeout", f"test {index + 1} reached the time limit"]
        return outcome


def _assertion_message(err: AssertionError) -> str:
    text = ""
    try:
        text = str(err)
    except Exception:  # noqa: BLE001, S110 - a broken __str__ leaves the message empty
        pass
    line = _tests_line(err.__traceback__)
    if text:
        return _short(f"AssertionError: {text}" + (f" (line {line[0]})" if line else ""))
    if line:
        return _short(f"AssertionError at line {line[0]}: {line[1]}")
    return "AssertionError"


def _error_message(err: BaseException) -> str:
    try:
        text = str(err)
    except Exception:  # noqa: BLE001
        text = ""
    head = f"{type(err).__name__}: {text}" if text else type(err).__name__
    if isinstance(err, RemoteError):
        head = text or head
    where = getattr(err, "remote_where", "")
    if where:
        head += f" raised by the answer{where}"
    line = _tests_line(err.__traceback__)
    if line:
        head += f" at line {line[0]}: {line[1]}"
    return _short(head)


_TEST_LINES: list[str] = []


def _tests_line(tb: types.TracebackType | None) -> tuple[int, str] | None:
    found = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == TESTS_FILE:
            number = tb.tb_lineno
            text = _TEST_LINES[number - 1].strip() if 0 < number <= len(_TEST_LINES) else ""
            found = (number, text)
        tb = tb.tb_next
    return found


def _on_alarm(signum: int, frame: object) -> None:
    raise HarnessTimeout("time limit")


def _record(fd: int, nonce: str, body: dict[str, object]) -> None:
    """Write the one record, kept under the pipe's buffer size."""
    data = json.dumps(body, ensure_ascii=True, separators=(",", ":"))
    tests = body.get("tests")
    for limit in (80, 0):
        if len(data) < MAX_RECORD_BYTES or not isinstance(tests, list):
            break
        body["tests"] = tests = [[t[0][:limit or 40], t[1], t[2][:limit]] for t in tests]
        data = json.dumps(body, ensure_ascii=True, separators=(",", ":"))
    if len(data) >= MAX_RECORD_BYTES and isinstance(tests, list):
        keep = MAX_RECORD_BYTES // 64
        body["tests"] = tests[:keep]
        body["omitted"] = [len(tests) - keep,
                           sum(1 for t in tests[keep:] if t[1] == "passed")]
        data = json.dumps(body, ensure_ascii=True, separators=(",", ":"))
    _write_all(fd, f"{nonce} {data}\n".encode("ascii"))


def main(payload_fd: int, record_fd: int) -> None:
    """The harness's entry point (see the module docstring). Never returns."""
    started = time.monotonic()
    _set_not_dumpable()
    for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGPIPE"):
        signal.signal(getattr(signal, name), signal.SIG_IGN)
    pairs = []
    for _ in range(MAX_ANSWER_PROCESSES):
        to_c_read, to_c_write = os.pipe()
        to_p_read, to_p_write = os.pipe()
        pairs.append((to_c_read, to_c_write, to_p_read, to_p_write))
    z_cmd_read, z_cmd_write = os.pipe()
    z_reply_read, z_reply_write = os.pipe()
    zygote = os.fork()
    if zygote == 0:
        _set_not_dumpable()
        for fd in (payload_fd, record_fd, z_cmd_write, z_reply_read):
            _close(fd)
        for pair in pairs:
            _close(pair[1])
            _close(pair[2])
        _zygote(z_cmd_read, z_reply_write, pairs)
    for fd in (z_cmd_read, z_reply_write):
        _close(fd)
    for pair in pairs:
        _close(pair[0])
        _close(pair[3])
    # Only now, with no other process of the run able to read it, does P take the payload.
    try:
        size = int.from_bytes(_read_exact(payload_fd, 8, None), "big")
        payload = json.loads(_read_exact(payload_fd, size, None))
    except (OSError, EOFError, ValueError):
        # No payload: this is not the sandbox's harness but an answer process that exec'd
        # the program again (e.g. under -O). Its exit status names that to the real harness.
        os._exit(REEXEC_STATUS)
    _close(payload_fd)
    nonce = payload["nonce"]
    deadline = started + max(payload["timeout_s"] * 0.9 - RECORD_RESERVE_S, 0.05)
    body: dict[str, object] = {"tests": [], "load": "", "tests_error": "", "harness_error": ""}
    harness = Harness(z_cmd_write, z_reply_read, pairs)
    harness.deadline = deadline
    try:
        signal.signal(signal.SIGALRM, _on_alarm)
        # Just after the deadline: waits on the answer end by their own timeout first.
        signal.setitimer(signal.ITIMER_REAL, max(deadline - time.monotonic(), 0.0) + 0.05)
        _run_all(harness, payload["answer"], payload["tests"], body)
        signal.setitimer(signal.ITIMER_REAL, 0)
    except HarnessTimeout:
        body["harness_error"] = body["harness_error"] or ""
        _finish_timeout(body)
    except BaseException as err:  # noqa: BLE001 - a failure of the harness itself
        signal.setitimer(signal.ITIMER_REAL, 0)
        body["harness_error"] = _short(f"{type(err).__name__}: {err}")
    harness.kill()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001, S110
            pass
    try:
        _record(record_fd, nonce, body)
    finally:
        os._exit(0)


def _visible_names(names: dict[str, object]) -> dict[str, object]:
    """The answer's names as the tests see them without importing `solution`.

    A name that shadows a built-in (``abs``, ``len``, ``sorted``, ...) stays out: the tests'
    ``abs(f(5) - 25) < 1e-9`` must use the real ``abs``, not one the answer wrote. A name of a
    standard-library module is the real module (or stays out) unless the answer bound plain data
    to it. ``solution.abs`` and ``from solution import abs`` still reach the answer's.
    """
    visible: dict[str, object] = {}
    for name, value in names.items():
        if name in _BUILTIN_NAMES:
            continue
        if name in sys.stdlib_module_names and isinstance(value, (Proxy, types.ModuleType)):
            module = _shared_module(name)
            if module is not None:
                visible[name] = module
            continue
        visible[name] = value
    return visible


_BUILTIN_NAMES = frozenset(dir(builtins))
_UNITS_TOTAL: list[str] = []


def _bound_names(node: object) -> list[str]:
    """The names a top-level def, class or import of the tests binds."""
    if isinstance(node, (_ast.FunctionDef, _ast.AsyncFunctionDef, _ast.ClassDef)):
        return [node.name]
    if isinstance(node, (_ast.Import, _ast.ImportFrom)):
        return [(alias.asname or alias.name).split(".")[0] for alias in node.names
                if alias.name != "*"]
    return []


def _finish_timeout(body: dict[str, object]) -> None:
    """P's own deadline passed outside a unit: the next unit timed out, the rest did not run."""
    tests = body["tests"]
    assert isinstance(tests, list)
    done = len(tests)
    for i, name in enumerate(_UNITS_TOTAL[done:]):
        tests.append([name, "timeout", "the time limit was reached"] if i == 0 else
                     [name, "error", "not run: the time limit was reached"])


def _run_all(harness: Harness, answer: str, tests: str, body: dict[str, object]) -> None:
    send_message(harness.zygote_write, ["code", answer])
    # The unittest runner's name is new each run and set after the answer's names: the answer
    # can neither know it nor shadow it.
    runner = f"__wc_unittest_{os.urandom(8).hex()}__"
    try:
        units = split_tests(tests, runner)
    except (SyntaxError, ValueError, MemoryError, RecursionError) as err:
        detail = f" at line {err.lineno}" if isinstance(err, SyntaxError) and err.lineno else ""
        body["tests_error"] = _short(f"the tests do not compile: {type(err).__name__}{detail}: "
                                     f"{getattr(err, 'msg', err)}")
        return
    _TEST_LINES[:] = tests.splitlines()
    compiled = []
    for name, statements in units:
        module = _ast.Module(body=statements, type_ignores=[])  # type: ignore[arg-type]
        try:
            code = compile(module, TESTS_FILE, "exec", dont_inherit=True, optimize=0)
        except (SyntaxError, ValueError, TypeError, RecursionError) as err:
            body["tests_error"] = _short(f"the tests do not compile: {type(err).__name__}: "
                                         f"{err}")
            return
        compiled.append((name, code))
    _UNITS_TOTAL[:] = [name for name, _ in compiled]
    results = body["tests"]
    assert isinstance(results, list)
    try:
        loaded = harness.spawn()
    except AnswerTimeout:
        if compiled:
            results.append([compiled[0][0], "timeout", ("the answer's top-level code was still "
                                                        "running at the time limit")])
        loaded = False
    body["load"] = harness.load_error
    body["notes"] = harness.tampering
    fake = types.ModuleType("solution")
    fake.__dict__.update(harness.names)
    visible = _visible_names(harness.names)
    # `from solution import *` brings what the tests see anyway, never the answer's `abs`.
    fake.__all__ = [name for name, value in visible.items()  # type: ignore[attr-defined]
                    if not name.startswith("_") and value is harness.names[name]]

    def missing(name: str) -> object:
        # A name the answer's module got after loading (`from solution import late`).
        peer = harness.peer
        if name.startswith("__") or peer is None or peer.dead is not None:
            raise AttributeError(f"module 'solution' has no attribute {name!r}")
        return peer.request("lookup", None, name)

    fake.__getattr__ = missing  # type: ignore[method-assign]
    sys.modules["solution"] = fake
    # A function, class or import of the tests is theirs, even where the statement that binds
    # it never ran (an earlier statement of its test raised): the harness calls the tests'
    # test functions by name, and an answer's `test_b` or `isclose` must not stand in.
    defined = {name for _, statements in units for node in statements
               for name in _bound_names(node)}
    namespace: dict[str, object] = {name: value for name, value in visible.items()
                                    if name not in defined}
    # The harness's own names go in last: none of the answer's can stand in for them.
    namespace.update({"__name__": "__main__", "__builtins__": builtins, runner: _run_unittest})
    for index, (name, code) in enumerate(compiled[len(results):], start=len(results)):
        if not loaded and not harness.gone_for_good:
            harness.gone_for_good = "not run: the answer could not be loaded"
        if harness.gone_for_good:
            results.append([name, "error", harness.gone_for_good])
            continue
        results.append(harness.run_unit(index, name, code, namespace))


# The harness's own classes (it runs as __main__, like the tests): never open to the answer.
_HARNESS_TYPES = frozenset(value for value in list(globals().values())
                           if isinstance(value, type) and value.__module__ == __name__)
