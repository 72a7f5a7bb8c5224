"""Named registries: strategies, engines and datasets are each one :class:`Registry`.

A registry maps a name to an entry, keeps registration order (the order listings and the
student's instruction use), refuses to overwrite an entry unless asked (``replace=True``) and
answers an unknown name with an error that lists the choices. Registering is the only way in:
no module writes into another module's tables.

>>> colours = Registry[str]("colour")
>>> colours.register("red", "#f00")
'#f00'
>>> colours.get("red"), colours.names()
('#f00', ['red'])
>>> colours.get("blue")
Traceback (most recent call last):
...
siked.errors.SikedError: unknown colour 'blue'; choose one of: red
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

from siked.errors import SikedError

T = TypeVar("T")


class Registry(Generic[T]):
    """Entries of one ``kind`` by name, in registration order.

    ``error`` is the exception class raised for an unknown name (its message names the
    choices); a duplicate registration raises ``ValueError``.
    """

    def __init__(self, kind: str, error: type[Exception] = SikedError) -> None:
        self.kind = kind
        self.error = error
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T, *, replace: bool = False) -> T:
        """Add ``entry`` as ``name`` (``replace=True`` overrides an existing one); return it."""
        if name in self._entries and not replace:
            raise ValueError(f"{self.kind} {name!r} is already registered (replace=True overrides)")
        self._entries[name] = entry
        return entry

    def unregister(self, name: str) -> T | None:
        """Remove ``name`` (plug-ins and tests that add a temporary entry); return its entry."""
        return self._entries.pop(name, None)

    def get(self, name: str) -> T:
        """The entry ``name``; :attr:`error` naming the choices when there is none."""
        try:
            return self._entries[name]
        except KeyError:
            raise self.error(
                f"unknown {self.kind} {name!r}; choose one of: {', '.join(self._entries)}"
            ) from None

    def names(self) -> list[str]:
        """Registered names, in registration order."""
        return list(self._entries)

    def values(self) -> list[T]:
        """Registered entries, in registration order."""
        return list(self._entries.values())

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)
