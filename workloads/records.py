"""``@record``: a dataclass whose repr / eq / hash are shared functions, not compiled per class.

``@dataclass`` builds each generated method from source text with ``exec`` when the class is
created (on Python 3.10-3.12 one ``compile`` per method, ~0.1-0.2 ms CPU each); a default
``xpusim run`` created 43 dataclasses with 201 generated methods, 30-45 ms CPU of its
start-up (issue 18). :func:`record` lets :func:`dataclasses.dataclass` generate only
``__init__`` (and a frozen class's ``__setattr__`` / ``__delattr__``, which it always
generates) and gives the class one shared ``__repr__``, ``__eq__`` and ``__hash__`` that read
the fields through an :func:`operator.attrgetter` made once per class. They return what the
generated methods return: the same repr text (fields with ``repr=True``, ``...`` on
recursion), equality of the tuples of ``compare=True`` fields between instances of exactly the
same class (else ``NotImplemented``), and for frozen classes the hash of the tuple of hashed
fields; a mutable record is unhashable, as a mutable dataclass with ``eq=True`` is.
``dataclasses.fields`` / ``replace`` / ``asdict`` work as on any dataclass.
tests/test_startup_imports.py compares the methods with the generated ones on every record
class a run creates. Not for classes that define their own ``__repr__``, ``__eq__`` or
``__hash__``, or need ``order`` / ``unsafe_hash`` (use ``@dataclass`` there).

Cost: the shared ``__eq__`` / ``__hash__`` read fields through a generic ``getattr`` where the
generated ones use the interpreter's specialised attribute loads: 1.5-2x the CPU per call
(``timeit`` on a GEMM Einsum: hash 0.76 -> 1.19 us, ``==`` 0.28 -> 0.58 us). A run compares
records ~100 times and hashes none (profiled: h100 defaults, dgx-a100 TP8, dgx-h100 TP2 x
PP2, neupims, neupims-npu, flat, fusemax, sn40l, duplex, spr-8480), so start-up gains ~0.2 ms
per class and runs lose nothing; a class hashed in a hot loop belongs on ``@dataclass``.
"""

from __future__ import annotations

import dataclasses
import reprlib
from operator import attrgetter

TYPE_CHECKING = False
if TYPE_CHECKING:   # typing is not imported at run time: the light commands never load it
    from collections.abc import Callable
    from typing import Any, TypeVar

    T = TypeVar("T")
_OWN = ("__repr__", "__eq__", "__hash__")


def _key(names: list[str]) -> Callable[[Any], tuple]:
    """A function giving the tuple of the named attributes of an object (a class attribute
    that does not bind: an ``attrgetter``, or a ``staticmethod``)."""
    if len(names) > 1:
        return attrgetter(*names)
    if names:
        one = attrgetter(names[0])
        return staticmethod(lambda obj: (one(obj),))
    return staticmethod(lambda obj: ())


@reprlib.recursive_repr()
def _repr(self: Any) -> str:
    fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__record_repr__)
    return f"{self.__class__.__qualname__}({fields})"


def _eq(self: Any, other: Any) -> bool:
    if other.__class__ is self.__class__:
        key = self.__record_eq__
        return key(self) == key(other)
    return NotImplemented


def _hash(self: Any) -> int:
    return hash(self.__record_hash__(self))


def record(cls: type[T] | None = None, /, *, frozen: bool = False, kw_only: bool = False,
           slots: bool = False) -> Any:
    """``@dataclass`` (with ``frozen``, ``kw_only``, ``slots``) with the shared methods above."""

    def wrap(cls: type[T]) -> type[T]:
        own = [name for name in _OWN if name in cls.__dict__]
        if own:
            raise TypeError(f"@record {cls.__qualname__} defines {', '.join(own)}; "
                            f"use @dataclass")
        out = dataclasses.dataclass(cls, repr=False, eq=False, frozen=frozen, kw_only=kw_only,
                                    slots=slots)
        fields = dataclasses.fields(out)
        out.__record_repr__ = tuple(f.name for f in fields if f.repr)
        out.__record_eq__ = _key([f.name for f in fields if f.compare])
        out.__repr__ = _repr
        out.__eq__ = _eq
        if frozen:
            out.__record_hash__ = _key([f.name for f in fields
                                        if (f.compare if f.hash is None else f.hash)])
            out.__hash__ = _hash
        else:
            out.__hash__ = None
        return out

    return wrap if cls is None else wrap(cls)
