"""A value that never shows itself in repr, str, logs or error bodies."""
from __future__ import annotations


class Secret:
    __slots__ = ("_value",)

    def __init__(self, value: str | bytes) -> None:
        self._value = value

    def get(self) -> str | bytes:
        return self._value

    def get_bytes(self) -> bytes:
        v = self._value
        return v if isinstance(v, bytes) else v.encode()

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self):  # pickling would write the clear value somewhere
        raise TypeError("Secret cannot be pickled")
