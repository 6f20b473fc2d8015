"""The public course query: filters, sort and full-text search, on both backends.

PostgreSQL matches `websearch_to_tsquery` against the generated, GIN-indexed `search_vector`
(title weighted A, subtitle and tags B, description C) and ranks with `ts_rank`. SQLite has no
full-text index here, so every search term must appear (LIKE) in one of the same fields and the
score mirrors the weights: 3 per term in the title, 2 in subtitle or tags, 1 in the description.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa

from catalog.models import Category, Course, CourseInstructor

MAX_SEARCH_TERMS = 8
SEARCH_CONFIG = "english"


@dataclass(frozen=True)
class CourseQuery:
    """Everything a public listing can ask for; also the cache key of its answer."""

    q: str | None = None
    category: str | None = None
    level: str | None = None
    language: str | None = None
    price: Literal["free", "paid"] | None = None
    instructor: uuid.UUID | None = None
    sort: str | None = None
    page: int = 1
    page_size: int = 20

    def cache_key(self) -> str:
        parts = [f"{name}={value}" for name, value in sorted(vars(self).items()) if value is not None]
        return "&".join(parts)

    @property
    def effective_sort(self) -> str:
        if self.sort:
            return self.sort if self.sort != "relevance" or self.q else "newest"
        return "relevance" if self.q else "newest"


def _escape_like(term: str) -> str:
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _filters(query: CourseQuery) -> list[sa.ColumnElement[bool]]:
    conditions: list[sa.ColumnElement[bool]] = []
    if query.category:
        conditions.append(Course.category_id == sa.select(Category.id).where(
            Category.slug == query.category).scalar_subquery())
    if query.level:
        conditions.append(Course.level == query.level)
    if query.language:
        conditions.append(Course.language == query.language)
    if query.price == "free":
        conditions.append(Course.price_amount == 0)
    elif query.price == "paid":
        conditions.append(Course.price_amount > 0)
    if query.instructor:
        conditions.append(Course.id.in_(sa.select(CourseInstructor.course_id).where(
            CourseInstructor.user_id == query.instructor)))
    return conditions


def _search(query: CourseQuery, dialect: str) -> tuple[list[sa.ColumnElement[bool]], Any]:
    """Match conditions and a relevance expression (higher is better) for `query.q`."""
    if not query.q or not query.q.strip():
        return [], None
    if dialect == "postgresql":
        vector: Any = sa.literal_column("courses.search_vector")
        tsquery = sa.func.websearch_to_tsquery(sa.literal_column(f"'{SEARCH_CONFIG}'::regconfig"), query.q)
        return [vector.op("@@")(tsquery)], sa.func.ts_rank(vector, tsquery)
    terms = query.q.lower().split()[:MAX_SEARCH_TERMS]
    conditions: list[sa.ColumnElement[bool]] = []
    score: Any = sa.literal(0)
    for term in terms:
        pattern = f"%{_escape_like(term)}%"

        def like(column: Any, pattern: str = pattern) -> sa.ColumnElement[bool]:
            return sa.func.lower(column).like(pattern, escape="\\")

        in_title, in_subtitle = like(Course.title), like(Course.subtitle)
        in_tags, in_description = like(Course.tags_text), like(Course.description)
        conditions.append(sa.or_(in_title, in_subtitle, in_tags, in_description))
        score = (score + sa.case((in_title, 3), else_=0) + sa.case((sa.or_(in_subtitle, in_tags), 2), else_=0)
                 + sa.case((in_description, 1), else_=0))
    return conditions, score


def _order(query: CourseQuery, relevance: Any) -> list[Any]:
    newest = [Course.published_at.desc(), Course.id.desc()]
    sort = query.effective_sort
    if sort == "relevance" and relevance is not None:
        return [relevance.desc(), *newest]
    if sort == "title":
        return [sa.func.lower(Course.title).asc(), Course.id.asc()]
    if sort == "price":
        return [Course.price_amount.asc(), *newest]
    if sort == "price_desc":
        return [Course.price_amount.desc(), *newest]
    return newest


def course_statements(query: CourseQuery, dialect: str,
                      base: sa.ColumnElement[bool]) -> tuple[sa.Select[Any], sa.Select[Any]]:
    """(count statement, page statement) for courses matching `base` and the query."""
    search_conditions, relevance = _search(query, dialect)
    where = sa.and_(base, *_filters(query), *search_conditions)
    count = sa.select(sa.func.count(Course.id)).where(where)
    page = (sa.select(Course).where(where).order_by(*_order(query, relevance))
            .offset((query.page - 1) * query.page_size).limit(query.page_size))
    return count, page
