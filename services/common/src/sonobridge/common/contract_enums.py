"""Domain enums onto the contract's protobuf enums, whose values are named PREFIX_MEMBER."""

from __future__ import annotations

from enum import Enum
from typing import TypeVar

from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper

_E = TypeVar("_E", bound=Enum)


def contract_values(members: type[_E], contract: EnumTypeWrapper, prefix: str) -> dict[_E, int]:
    """Map each member to the contract's value `prefix` + its name; ValueError if one is missing."""
    # Built at import: a member the contract lacks fails the service's start and its tests,
    # not the first event that carries it.
    return {member: contract.Value(prefix + member.name) for member in members}
