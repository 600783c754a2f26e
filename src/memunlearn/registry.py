"""Name -> object registries (timm's ``@register_model`` pattern).

Every pluggable concept (datasets, models, proxies, unlearning methods, RUM
strategies, forget-set kinds, MIA features) lives in one ``Registry``;
dispatch is a lookup, never an if/elif chain, and an unknown name is an
error that lists the known ones. Where each registry lives:
docs/architecture.md rule 3.
"""
from __future__ import annotations

from typing import Callable, Generic, Iterator, Mapping, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError):
    """An unknown registry name; the message lists the valid choices. ``from_params`` prefixes the key path."""

    def __init__(self, message: str, name: str | None = None, key: str | None = None):
        super().__init__(message)
        self.name = name  # the unknown name
        self.key = key  # the params key that holds it, once known

    def __str__(self) -> str:  # KeyError would wrap the message in quotes
        return str(self.args[0])


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T | None = None):
        """``registry.register("x", obj)`` or ``@registry.register("x")``."""
        if entry is not None:
            self._add(name, entry)
            return entry

        def decorator(obj: T) -> T:
            self._add(name, obj)
            return obj

        return decorator

    def _add(self, name: str, entry: T) -> None:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = entry

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}", name
            ) from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def items(self) -> Iterator[tuple[str, T]]:
        return iter(sorted(self._entries.items()))

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)


Factory = Callable[..., object]


def modality_of(name: str, registries: Mapping[str, Registry], what: str) -> str:
    """The modality whose registry in ``registries`` (modality -> registry) holds ``name``; an unknown name is an
    error listing every modality's names, e.g. ``what="dataset"`` for ``data.dataset``."""
    for modality, registry in registries.items():
        if name in registry:
            return modality
    choices = ", ".join(f"{', '.join(r.names())} ({m})" for m, r in registries.items())
    raise UnknownNameError(f"unknown {what} {name!r}; choose one of: {choices}", name)
