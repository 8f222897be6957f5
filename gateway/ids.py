"""Ids users send (threads, runs, assistants): checked before any side effect."""

from __future__ import annotations

from mesh_core.errors import FieldViolation, InvalidArgumentError

__all__ = ["IDS_MAX", "ID_MAX", "check_id", "check_ids", "check_page"]

ID_MAX = 256
# Ids one request may name (PruneThreads, CancelRuns, SearchThreads): each costs a
# lookup or more, so one request cannot hold the gateway for long.
IDS_MAX = 1000


def check_id(value: str, field: str, *, required: bool = True) -> None:
    if not value:
        if required:
            raise InvalidArgumentError(
                f"{field} is required", [FieldViolation(field, "must not be empty")]
            )
        return
    if len(value) > ID_MAX or any(c in value for c in "{}:\n\r\t ") or not value.isprintable():
        raise InvalidArgumentError(
            f"{field} is not a valid id",
            [
                FieldViolation(
                    field,
                    f"1-{ID_MAX} printable characters, none of '{{', '}}', ':' or whitespace",
                )
            ],
        )


def check_ids(values: list[str], field: str) -> list[str]:
    """The distinct ids of a list field, in order, each checked; at most ``IDS_MAX``."""
    distinct = list(dict.fromkeys(values))
    if len(distinct) > IDS_MAX:
        raise InvalidArgumentError(
            f"{field} names {len(distinct)} ids; at most {IDS_MAX} per request",
            [FieldViolation(field, f"at most {IDS_MAX} ids")],
        )
    for value in distinct:
        check_id(value, field)
    return distinct


def check_page(limit: int, offset: int, default: int = 10) -> tuple[int, int]:
    """(limit, offset) of a listing: 0 means ``default``; negative is INVALID_ARGUMENT."""
    if limit < 0 or offset < 0:
        raise InvalidArgumentError(
            "limit and offset must not be negative",
            [FieldViolation("limit" if limit < 0 else "offset", "must be >= 0")],
        )
    return limit or default, offset
