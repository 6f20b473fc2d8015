"""categories, course metadata, co-instructors, known assets, enrollment audit, erasure, search

Revision ID: c7a41d9e2b10
Revises: c6188143a4b1
Create Date: 2026-11-22 22:50:24.270096
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import common.db

revision: str = 'c7a41d9e2b10'
down_revision: str | None = 'c6188143a4b1'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Weighted: title (A) > subtitle and tags (B) > description (C). English stemming, so
# "streaming" finds "stream"; a generated column keeps it in step with every write.
SEARCH_VECTOR = (
    "setweight(to_tsvector('english'::regconfig, coalesce(title, '')), 'A') || "
    "setweight(to_tsvector('english'::regconfig, coalesce(subtitle, '') || ' ' || coalesce(tags_text, '')), 'B') || "
    "setweight(to_tsvector('english'::regconfig, coalesce(description, '')), 'C')"
)

# The audit trail is append-only; erasure may only blank the user and actor ids.
AUDIT_GUARD = """
CREATE FUNCTION enrollment_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'enrollment_audit is append-only';
    END IF;
    IF NEW.id IS DISTINCT FROM OLD.id OR NEW.at IS DISTINCT FROM OLD.at
       OR NEW.action IS DISTINCT FROM OLD.action OR NEW.course_id IS DISTINCT FROM OLD.course_id
       OR NEW.reason IS DISTINCT FROM OLD.reason OR NEW.changed IS DISTINCT FROM OLD.changed
       OR (NEW.user_id IS DISTINCT FROM OLD.user_id AND NEW.user_id IS NOT NULL)
       OR (NEW.actor_id IS DISTINCT FROM OLD.actor_id AND NEW.actor_id IS NOT NULL) THEN
        RAISE EXCEPTION 'enrollment_audit is append-only (erasure may only blank ids)';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER enrollment_audit_append_only BEFORE UPDATE OR DELETE ON enrollment_audit
    FOR EACH ROW EXECUTE FUNCTION enrollment_audit_append_only();
"""


def upgrade() -> None:
    op.create_table('categories',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('slug', sa.String(length=80), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('slug')
    )
    op.create_table('enrollment_audit',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('at', common.db.UTCDateTime(), nullable=False),
    sa.Column('actor_id', sa.Uuid(), nullable=True),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=True),
    sa.Column('course_id', sa.Uuid(), nullable=False),
    sa.Column('reason', sa.String(length=500), nullable=False),
    sa.Column('changed', sa.Boolean(), nullable=False),
    sa.CheckConstraint("action IN ('grant', 'revoke')", name='ck_enrollment_audit_action'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('enrollment_audit', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_enrollment_audit_course_id'), ['course_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_enrollment_audit_user_id'), ['user_id'], unique=False)

    op.create_table('erased_users',
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('erased_at', common.db.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('user_id')
    )
    op.create_table('known_assets',
    sa.Column('asset_id', sa.Uuid(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('owner_id', sa.Uuid(), nullable=True),
    sa.Column('duration_seconds', sa.Integer(), nullable=True),
    sa.Column('updated_at', common.db.UTCDateTime(), nullable=False),
    sa.CheckConstraint("state IN ('ready', 'deleted')", name='ck_known_assets_state'),
    sa.PrimaryKeyConstraint('asset_id')
    )
    op.create_table('course_instructors',
    sa.Column('course_id', sa.Uuid(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['course_id'], ['courses.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('course_id', 'user_id')
    )
    with op.batch_alter_table('course_instructors', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_course_instructors_user_id'), ['user_id'], unique=False)

    with op.batch_alter_table('courses', schema=None) as batch_op:
        batch_op.add_column(sa.Column('level', sa.String(length=16), nullable=False, server_default='all'))
        batch_op.add_column(sa.Column('language', sa.String(length=8), nullable=False, server_default='en'))
        batch_op.add_column(sa.Column('category_id', sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column('tags', sa.JSON(), nullable=False, server_default='[]'))
        batch_op.add_column(sa.Column('tags_text', sa.String(length=1000), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('cover_image_url', sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column('lesson_count', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('duration_seconds', sa.Integer(), nullable=False, server_default='0'))
        batch_op.create_index(batch_op.f('ix_courses_category_id'), ['category_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_courses_language'), ['language'], unique=False)
        batch_op.create_foreign_key('fk_courses_category_id', 'categories', ['category_id'], ['id'],
                                    ondelete='SET NULL')
        batch_op.drop_constraint('ck_courses_status', type_='check')
        batch_op.create_check_constraint('ck_courses_status',
                                         "status IN ('draft', 'in_review', 'published', 'archived')")
        batch_op.create_check_constraint('ck_courses_level',
                                         "level IN ('beginner', 'intermediate', 'advanced', 'all')")

    with op.batch_alter_table('lessons', schema=None) as batch_op:
        batch_op.add_column(sa.Column('body', sa.Text(), nullable=True))

    # Existing rows: the creator is the first instructor; derived counts from the curriculum.
    op.execute("INSERT INTO course_instructors (course_id, user_id, position) "
               "SELECT id, instructor_id, 1 FROM courses")
    op.execute("UPDATE courses SET "
               "lesson_count = (SELECT count(*) FROM lessons WHERE lessons.course_id = courses.id), "
               "duration_seconds = (SELECT coalesce(sum(duration_seconds), 0) FROM lessons "
               "WHERE lessons.course_id = courses.id)")

    if op.get_context().dialect.name == 'postgresql':
        op.execute(f"ALTER TABLE courses ADD COLUMN search_vector tsvector "
                   f"GENERATED ALWAYS AS ({SEARCH_VECTOR}) STORED")
        op.execute("CREATE INDEX ix_courses_search_vector ON courses USING gin (search_vector)")
        op.execute(AUDIT_GUARD)


def downgrade() -> None:
    if op.get_context().dialect.name == 'postgresql':
        op.execute("DROP TRIGGER enrollment_audit_append_only ON enrollment_audit")
        op.execute("DROP FUNCTION enrollment_audit_append_only()")
        op.execute("DROP INDEX ix_courses_search_vector")
        op.execute("ALTER TABLE courses DROP COLUMN search_vector")
    with op.batch_alter_table('lessons', schema=None) as batch_op:
        batch_op.drop_column('body')

    op.execute("UPDATE courses SET status = 'draft' WHERE status = 'in_review'")
    with op.batch_alter_table('courses', schema=None) as batch_op:
        batch_op.drop_constraint('ck_courses_level', type_='check')
        batch_op.drop_constraint('ck_courses_status', type_='check')
        batch_op.create_check_constraint('ck_courses_status', "status IN ('draft', 'published', 'archived')")
        batch_op.drop_constraint('fk_courses_category_id', type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_courses_language'))
        batch_op.drop_index(batch_op.f('ix_courses_category_id'))
        batch_op.drop_column('duration_seconds')
        batch_op.drop_column('lesson_count')
        batch_op.drop_column('cover_image_url')
        batch_op.drop_column('tags_text')
        batch_op.drop_column('tags')
        batch_op.drop_column('category_id')
        batch_op.drop_column('language')
        batch_op.drop_column('level')

    with op.batch_alter_table('course_instructors', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_course_instructors_user_id'))

    op.drop_table('course_instructors')
    op.drop_table('known_assets')
    op.drop_table('erased_users')
    with op.batch_alter_table('enrollment_audit', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_enrollment_audit_user_id'))
        batch_op.drop_index(batch_op.f('ix_enrollment_audit_course_id'))

    op.drop_table('enrollment_audit')
    op.drop_table('categories')
