"""Bounds for the integers and strings a request may carry, so that bad input is a 422, not a 500.

An integer past what its column holds (PostgreSQL `integer`, `bigint`; SQLite's 64 bits) fails
at insert time, after validation; a string without a length costs memory and CPU on every layer.
Request fields declare `le=INT32_MAX` (or use the types below) and a `max_length`; the static test
tests/static/test_input_bounds.py fails on any request parameter or body field without bounds.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Query
from pydantic import Field

INT32_MAX = 2**31 - 1  # PostgreSQL `integer` (sa.Integer)
INT64_MAX = 2**63 - 1  # PostgreSQL `bigint`, SQLite's INTEGER
# The longest text field a request may carry (a lesson's body); short fields declare their own.
LONG_TEXT_MAX = 100_000
EMAIL_MAX_LENGTH = 254  # RFC 5321's path limit, as email-validator enforces it

PositiveInt32 = Annotated[int, Field(gt=0, le=INT32_MAX)]
NonNegativeInt32 = Annotated[int, Field(ge=0, le=INT32_MAX)]

# Paging, the same on every list route (query parameters).
PageNumber = Annotated[int, Query(ge=1, le=100_000, description="1-based page number")]
PageSize = Annotated[int, Query(ge=1, le=100, description="items per page, at most 100")]
