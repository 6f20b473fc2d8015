"""search vector stemmed with the text-search configuration of each course's language

Revision ID: e4b27c9d1f03
Revises: c7a41d9e2b10
Create Date: 2026-11-23 00:05:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = 'e4b27c9d1f03'
down_revision: str | None = 'c7a41d9e2b10'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Same mapping as catalog.search.TEXT_SEARCH_CONFIGS (frozen here, as migrations must be). Every
# branch is a regconfig constant: a cast of a computed text would not be immutable, and generated
# columns need immutable expressions.
LANGUAGE_CONFIG = (
    "CASE split_part(language, '-', 1) "
    "WHEN 'en' THEN 'english'::regconfig WHEN 'de' THEN 'german'::regconfig "
    "WHEN 'fr' THEN 'french'::regconfig WHEN 'es' THEN 'spanish'::regconfig "
    "WHEN 'it' THEN 'italian'::regconfig WHEN 'pt' THEN 'portuguese'::regconfig "
    "WHEN 'nl' THEN 'dutch'::regconfig ELSE 'simple'::regconfig END"
)


def _vector(config: str) -> str:
    """Weighted: title (A) > subtitle and tags (B) > description (C)."""
    return (
        f"setweight(to_tsvector({config}, coalesce(title, '')), 'A') || "
        f"setweight(to_tsvector({config}, coalesce(subtitle, '') || ' ' || coalesce(tags_text, '')), 'B') || "
        f"setweight(to_tsvector({config}, coalesce(description, '')), 'C')"
    )


def _replace_vector(expression: str) -> None:
    """A generated column's expression cannot be altered before PostgreSQL 17: drop and re-add
    (the table is rewritten once, filling the column for every existing course)."""
    op.execute("DROP INDEX ix_courses_search_vector")
    op.execute("ALTER TABLE courses DROP COLUMN search_vector")
    op.execute(f"ALTER TABLE courses ADD COLUMN search_vector tsvector GENERATED ALWAYS AS ({expression}) STORED")
    op.execute("CREATE INDEX ix_courses_search_vector ON courses USING gin (search_vector)")


def upgrade() -> None:
    if op.get_context().dialect.name == 'postgresql':
        _replace_vector(_vector(f"({LANGUAGE_CONFIG})"))


def downgrade() -> None:
    if op.get_context().dialect.name == 'postgresql':
        _replace_vector(_vector("'english'::regconfig"))
