"""accounts, sessions, mailed tokens, audit log, key rotation

Revision ID: 3b7c1d2e9a40
Revises: f579193b2f6b
Create Date: 2026-11-24 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import common.db

revision: str = '3b7c1d2e9a40'
down_revision: str | None = 'f579193b2f6b'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The audit log is append-only: PostgreSQL refuses UPDATE, DELETE and TRUNCATE on it outright.
AUDIT_GUARD_FUNCTION = """
CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION USING MESSAGE = 'audit_log is append-only, refused ' || TG_OP,
        ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql
"""


def upgrade() -> None:
    is_pg = op.get_bind().dialect.name == "postgresql"

    op.create_table('sessions',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('created_at', common.db.UTCDateTime(), nullable=False),
    sa.Column('expires_at', common.db.UTCDateTime(), nullable=False),
    sa.Column('last_used_at', common.db.UTCDateTime(), nullable=False),
    sa.Column('revoked_at', common.db.UTCDateTime(), nullable=True),
    sa.Column('revoke_reason', sa.String(length=40), nullable=True),
    sa.Column('ip', sa.String(length=64), nullable=True),
    sa.Column('user_agent', sa.String(length=200), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sessions_user_id'), ['user_id'], unique=False)

    # Every existing refresh-token family becomes a session.
    op.execute(
        "INSERT INTO sessions (id, user_id, created_at, expires_at, last_used_at, revoked_at) "
        "SELECT family_id, user_id, MIN(created_at), MAX(expires_at), MAX(created_at), MAX(revoked_at) "
        "FROM refresh_tokens GROUP BY family_id, user_id"
    )
    # Revocation moves to the session (the family); the per-token flag goes.
    with op.batch_alter_table('refresh_tokens', schema=None) as batch_op:
        batch_op.create_foreign_key(batch_op.f('fk_refresh_tokens_family_id_sessions'), 'sessions',
                                    ['family_id'], ['id'], ondelete='CASCADE')
        batch_op.drop_column('revoked_at')

    op.create_table('email_tokens',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('purpose', sa.String(length=20), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('created_at', common.db.UTCDateTime(), nullable=False),
    sa.Column('expires_at', common.db.UTCDateTime(), nullable=False),
    sa.Column('used_at', common.db.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_hash')
    )
    with op.batch_alter_table('email_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_email_tokens_user_id'), ['user_id'], unique=False)

    op.create_table('audit_log',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('occurred_at', common.db.UTCDateTime(), nullable=False),
    sa.Column('action', sa.String(length=40), nullable=False),
    sa.Column('outcome', sa.String(length=20), nullable=False),
    sa.Column('actor', sa.String(length=80), nullable=True),
    sa.Column('subject_id', sa.Uuid(), nullable=True),
    sa.Column('ip', sa.String(length=64), nullable=True),
    sa.Column('user_agent', sa.String(length=200), nullable=True),
    sa.Column('request_id', sa.String(length=128), nullable=True),
    sa.Column('details', common.db.JSONType, nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_log_action'), ['action'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_log_occurred_at'), ['occurred_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_log_subject_id'), ['subject_id'], unique=False)
    if is_pg:
        op.execute(AUDIT_GUARD_FUNCTION)
        op.execute("CREATE TRIGGER audit_log_no_update_delete BEFORE UPDATE OR DELETE ON audit_log "
                   "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()")
        op.execute("CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
                   "FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()")

    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('updated_at', common.db.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('email_verified_at', common.db.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('password_changed_at', common.db.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('last_login_at', common.db.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('disabled_at', common.db.UTCDateTime(), nullable=True))

    with op.batch_alter_table('signing_keys', schema=None) as batch_op:
        batch_op.alter_column('private_pem', new_column_name='private_key', existing_type=sa.Text(),
                              existing_nullable=False)
        batch_op.add_column(sa.Column('activates_at', common.db.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('retire_after', common.db.UTCDateTime(), nullable=True))
    op.execute("UPDATE signing_keys SET activates_at = created_at")
    with op.batch_alter_table('signing_keys', schema=None) as batch_op:
        batch_op.alter_column('activates_at', existing_type=common.db.UTCDateTime(), nullable=False)


def downgrade() -> None:
    is_pg = op.get_bind().dialect.name == "postgresql"
    with op.batch_alter_table('signing_keys', schema=None) as batch_op:
        batch_op.drop_column('retire_after')
        batch_op.drop_column('activates_at')
        batch_op.alter_column('private_key', new_column_name='private_pem', existing_type=sa.Text(),
                              existing_nullable=False)

    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('disabled_at')
        batch_op.drop_column('last_login_at')
        batch_op.drop_column('password_changed_at')
        batch_op.drop_column('email_verified_at')
        batch_op.drop_column('updated_at')

    if is_pg:
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log")
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_update_delete ON audit_log")
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_log_subject_id'))
        batch_op.drop_index(batch_op.f('ix_audit_log_occurred_at'))
        batch_op.drop_index(batch_op.f('ix_audit_log_action'))
    op.drop_table('audit_log')
    if is_pg:
        op.execute("DROP FUNCTION IF EXISTS audit_log_append_only()")

    with op.batch_alter_table('email_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_email_tokens_user_id'))
    op.drop_table('email_tokens')

    with op.batch_alter_table('refresh_tokens', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_refresh_tokens_family_id_sessions'), type_='foreignkey')
        batch_op.add_column(sa.Column('revoked_at', common.db.UTCDateTime(), nullable=True))
    op.execute("UPDATE refresh_tokens SET revoked_at = (SELECT revoked_at FROM sessions "
               "WHERE sessions.id = refresh_tokens.family_id)")
    with op.batch_alter_table('sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sessions_user_id'))
    op.drop_table('sessions')
