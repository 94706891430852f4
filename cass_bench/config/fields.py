"""What a config field declares besides its type and default: its ``run`` flag (names, help, choices) and its role in
a record's identity, kept together in the field's metadata (:func:`setting`, :func:`flagged`).

The roles (read by :mod:`cass_bench.records.identity`):

- :data:`CELL`: an axis of the sweep; a cell's value is in its ``Cell``, so it is not hashed as a setting;
- :data:`PRETRAIN`: pretraining depends on it: it enters the checkpoint key and every record id;
- :data:`RECORD`: only the downstream evaluation depends on it: it enters the record ids, not the checkpoint key;
- :data:`NONE`: it changes no measured number, or enters the identity through a derived setting.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, get_type_hints

CELL, PRETRAIN, RECORD, NONE = "cell", "pretrain", "record", "none"
ROLE_NAMES = (CELL, PRETRAIN, RECORD, NONE)
FLAG, ROLE = "flag", "role"
"""The field-metadata keys of a :class:`Flag` and of an identity role."""
_MISSING: Any = dataclasses.MISSING


@dataclass(frozen=True)
class Flag:
    """The ``run`` command-line flag of a config field (its value is parsed by the field's type hint).

    Attributes:
        names: the flag and its aliases, e.g. ``("--dataset", "--datasets")``.
        help: one line for ``--help``.
        choices: the allowed values, when ``--help`` should list them.
        const: the value of the bare flag, when it may also be given a value (``--flag`` or ``--flag VALUE``).
    """

    names: tuple[str, ...]
    help: str | None = None
    choices: tuple[str, ...] | None = None
    const: str | None = None


def setting(default: Any = _MISSING, role: str = NONE, *, factory: Callable[[], Any] | None = None,
            flag: Flag | None = None) -> Any:
    """A config field with its identity ``role`` (one of :data:`ROLE_NAMES`) and optional ``run`` flag.

    Args:
        default: the default value (or ``factory``: what makes it, for mutable defaults and sections).
        role: how the field enters a record's identity.
        factory: makes the default.
        flag: its command-line flag.
    """
    if role not in ROLE_NAMES:
        raise ValueError(f"unknown identity role {role!r}; use one of {ROLE_NAMES}")
    metadata: dict[str, Any] = {ROLE: role, **({FLAG: flag} if flag is not None else {})}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def flagged(default: Any, *names: str, role: str | None = None, help: str | None = None,
            choices: tuple[str, ...] | None = None, const: str | None = None) -> Any:
    """A config field with a ``run`` flag: its ``names`` (the flag and its aliases), help, choices and bare value,
    and its identity role when it is a field of the whole config (a section's fields take their section's role)."""
    flag = Flag(tuple(names), help, choices, const)
    if role is None:
        return field(default=default, metadata={FLAG: flag})
    return setting(default, role, flag=flag)


def config_flags(cls: type) -> list[tuple[str, Flag, Any]]:
    """Every flagged field of ``cls`` and its sections: (dotted key, :class:`Flag`, type hint), in field order."""
    return _flags(cls, "")


def _flags(cls: type, prefix: str) -> list[tuple[str, Flag, Any]]:
    hints = get_type_hints(cls)
    found = []
    for f, hint in ((f, hints[f.name]) for f in dataclasses.fields(cls)):
        if FLAG in f.metadata:
            found.append((prefix + f.name, f.metadata[FLAG], hint))
        elif dataclasses.is_dataclass(hint):
            found.extend(_flags(hint, f"{prefix}{f.name}."))
    return found


def roles(cls: type) -> dict[str, str]:
    """The identity role of each field of ``cls`` that declares one."""
    return {f.name: f.metadata[ROLE] for f in dataclasses.fields(cls) if ROLE in f.metadata}
