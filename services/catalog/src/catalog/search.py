"""The public course query: filters, sort and full-text search, on both backends.

PostgreSQL matches `websearch_to_tsquery` against the generated, GIN-indexed `search_vector`
(title weighted A, subtitle and tags B, description C) and ranks with `ts_rank`. Each course's
vector is built with the text-search configuration of its language (`TEXT_SEARCH_CONFIGS`, so
German words are stemmed the German way); the query is parsed with the same configuration:

- with a `language` filter, with that language's configuration (one indexed condition);
- without one, the index is searched with the OR of the query parsed by every configuration (a
  superset), and each candidate is then checked exactly against the query parsed with its own
  course's configuration, which also ranks it. The trade-off: the index scan may return a few
  candidates that the exact check then drops (a word whose stem in another language happens to
  match), never fewer than the right answer.

SQLite has no full-text index here, so every search term must appear (LIKE) in one of the same
fields and the score mirrors the weights: 3 per term in the title, 2 in subtitle or tags, 1 in the
description. It is language-independent (no stemming).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa

from catalog.models import Category, Course, CourseInstructor

MAX_SEARCH_TERMS = 8
# Course language (ISO 639-1, the region is ignored) -> PostgreSQL text-search configuration; any
# other language uses "simple" (no stemming, no stop words). Migration e4b27c9d1f03 builds the
# stored vectors with the same mapping: change both together (with a migration).
TEXT_SEARCH_CONFIGS = {"en": "english", "de": "german", "fr": "french", "es": "spanish", "it": "italian",
                       "pt": "portuguese", "nl": "dutch"}
FALLBACK_CONFIG = "simple"


def text_search_config(language: str) -> str:
    return TEXT_SEARCH_CONFIGS.get(language.split("-")[0], FALLBACK_CONFIG)


def _regconfig(name: str) -> Any:
    if not name.isalpha():  # only ever one of our own constants; never interpolate anything else
        raise ValueError(name)
    return sa.literal_column(f"'{name}'::regconfig")


def _per_course_language(value_for: Callable[[str], Any]) -> Any:
    """`value_for(config)` of the configuration of each course's own language (a CASE per row)."""
    language = sa.func.split_part(Course.language, "-", 1)
    return sa.case(*((language == code, value_for(config)) for code, config in TEXT_SEARCH_CONFIGS.items()),
                   else_=value_for(FALLBACK_CONFIG))


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


def search_match(query: CourseQuery, dialect: str) -> tuple[list[sa.ColumnElement[bool]], Any]:
    """Match conditions and a relevance expression (higher is better) for `query.q`."""
    if not query.q or not query.q.strip():
        return [], None
    if dialect == "postgresql":
        vector: Any = sa.literal_column("courses.search_vector")

        def parsed(config: Any) -> Any:
            return sa.func.websearch_to_tsquery(config, query.q)

        if query.language:
            tsquery = parsed(_regconfig(text_search_config(query.language)))
            return [vector.op("@@")(tsquery)], sa.func.ts_rank(vector, tsquery)
        configs = sorted({*TEXT_SEARCH_CONFIGS.values(), FALLBACK_CONFIG})
        any_config = parsed(_regconfig(configs[0]))
        for config in configs[1:]:
            any_config = any_config.op("||")(parsed(_regconfig(config)))
        # Each parse as a scalar subquery: evaluated once per statement, not once per candidate row.
        once = {config: sa.select(parsed(_regconfig(config))).scalar_subquery() for config in configs}
        own_config = _per_course_language(once.__getitem__)
        return [vector.op("@@")(any_config), vector.op("@@")(own_config)], sa.func.ts_rank(vector, own_config)
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
    search_conditions, relevance = search_match(query, dialect)
    where = sa.and_(base, *_filters(query), *search_conditions)
    count = sa.select(sa.func.count(Course.id)).where(where)
    page = (sa.select(Course).where(where).order_by(*_order(query, relevance))
            .offset((query.page - 1) * query.page_size).limit(query.page_size))
    return count, page
