"""Table-driven BARE codecs: each schema type is one codec object that writes a value to a
:class:`~rivetgreen.encoding.bare.BareWriter` and reads it back from a :class:`~rivetgreen.encoding.bare.BareReader`.

:class:`Struct` maps a message dataclass to its fields' codecs, :class:`Union` a set of variant classes to their tags,
:class:`Alias` a named type that is on the wire just another type (``type ToRivetEvents list<EventWrapper>``).
Union and enum tags are one byte, as the generated TypeScript codec writes them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from enum import Enum
from typing import Any, Protocol

from rivetgreen.encoding.bare import BareReader, BareWriter
from rivetgreen.errors import invalid_request


class Codec(Protocol):
    def write(self, writer: BareWriter, value: Any) -> None: ...

    def read(self, reader: BareReader) -> Any: ...


@dataclasses.dataclass(frozen=True)
class Primitive:
    """A BARE primitive, named as in the schema and as the :class:`BareWriter`/:class:`BareReader` method."""

    name: str

    def write(self, writer: BareWriter, value: Any) -> None:
        getattr(writer, self.name)(value)

    def read(self, reader: BareReader) -> Any:
        return getattr(reader, self.name)()


U16, U32, U64, I64, F64 = (Primitive(name) for name in ("u16", "u32", "u64", "i64", "f64"))
BOOL, STR, DATA = Primitive("bool"), Primitive("str"), Primitive("data")


@dataclasses.dataclass(frozen=True)
class FixedData:
    """``data[length]``."""

    length: int

    def write(self, writer: BareWriter, value: bytes) -> None:
        writer.fixed_data(value, self.length)

    def read(self, reader: BareReader) -> bytes:
        return reader.fixed_data(self.length)


@dataclasses.dataclass(frozen=True)
class OptionalOf:
    inner: Codec

    def write(self, writer: BareWriter, value: Any) -> None:
        writer.optional(value, lambda present: self.inner.write(writer, present))

    def read(self, reader: BareReader) -> Any:
        return reader.optional(lambda: self.inner.read(reader))


@dataclasses.dataclass(frozen=True)
class ListOf:
    element: Codec

    def write(self, writer: BareWriter, value: Sequence[Any]) -> None:
        writer.list(value, lambda element: self.element.write(writer, element))

    def read(self, reader: BareReader) -> list[Any]:
        return reader.list(lambda: self.element.read(reader))


@dataclasses.dataclass(frozen=True)
class MapOf:
    key: Codec
    value: Codec

    def write(self, writer: BareWriter, value: dict[Any, Any]) -> None:
        writer.map(value, lambda key: self.key.write(writer, key), lambda item: self.value.write(writer, item))

    def read(self, reader: BareReader) -> dict[Any, Any]:
        return reader.map(lambda: self.key.read(reader), lambda: self.value.read(reader))


class EnumOf:
    """A BARE enum: the member's position in ``enum_class`` as a one-byte tag."""

    def __init__(self, enum_class: type[Enum]) -> None:
        self.enum_class = enum_class
        self._members = list(enum_class)
        self._tags = {member: tag for tag, member in enumerate(self._members)}

    def write(self, writer: BareWriter, value: Enum) -> None:
        if value not in self._tags:
            raise TypeError(f"{value!r} is not a {self.enum_class.__name__}")
        writer.u8(self._tags[value])

    def read(self, reader: BareReader) -> Enum:
        tag = reader.u8()
        if tag >= len(self._members):
            raise invalid_request(f"Unknown {self.enum_class.__name__} tag {tag}.")
        return self._members[tag]


class Struct:
    """A message dataclass whose fields are written in order, each with its codec."""

    def __init__(self, message_class: type, *fields: tuple[str, Codec]) -> None:
        declared = tuple(field.name for field in dataclasses.fields(message_class))
        if declared != tuple(name for name, _ in fields):
            raise TypeError(f"the codec of {message_class.__name__} lists {fields}, the class declares {declared}")
        self.message_class = message_class
        self.fields = fields

    def write(self, writer: BareWriter, value: Any) -> None:
        if type(value) is not self.message_class:
            raise TypeError(f"expected a {self.message_class.__name__}, got {type(value).__name__}")
        for name, codec in self.fields:
            codec.write(writer, getattr(value, name))

    def read(self, reader: BareReader) -> Any:
        return self.message_class(**{name: codec.read(reader) for name, codec in self.fields})


class Alias:
    """A message dataclass of one field that is on the wire just that field (``type ToRivetEvents list<...>``)."""

    def __init__(self, message_class: type, field: str, inner: Codec) -> None:
        self.struct = Struct(message_class, (field, inner))
        self.message_class, self.field, self.inner = message_class, field, inner

    def write(self, writer: BareWriter, value: Any) -> None:
        self.struct.write(writer, value)

    def read(self, reader: BareReader) -> Any:
        return self.struct.read(reader)


Variant = Struct | Alias


class Union:
    """A BARE union: a one-byte tag (the variant's position in ``variants``), then the variant."""

    def __init__(self, name: str, *variants: Variant) -> None:
        self.name = name
        self.variants = variants
        self._tags = {variant.message_class: (tag, variant) for tag, variant in enumerate(variants)}

    def write(self, writer: BareWriter, value: Any) -> None:
        if type(value) not in self._tags:
            raise TypeError(f"{type(value).__name__} is not a variant of {self.name}")
        tag, variant = self._tags[type(value)]
        writer.u8(tag)
        variant.write(writer, value)

    def read(self, reader: BareReader) -> Any:
        tag = reader.u8()
        if tag >= len(self.variants):
            raise invalid_request(f"Unknown {self.name} tag {tag}.")
        return self.variants[tag].read(reader)
