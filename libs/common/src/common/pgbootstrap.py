"""Create the shared database, one login role and one schema per service (run as a superuser).

Idempotent, so `make up`, the compose init step and the test fixtures can all call it.
"""

from __future__ import annotations

import argparse

import psycopg
from psycopg import sql


def bootstrap(admin_dsn: str, database: str, roles: dict[str, tuple[str, str]]) -> None:
    """`roles` maps schema -> (role, password). The role owns only its schema."""
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
        for role, password in roles.values():
            has_role = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
            statement = "ALTER ROLE {} LOGIN PASSWORD {}" if has_role else "CREATE ROLE {} LOGIN PASSWORD {}"
            conn.execute(sql.SQL(statement).format(sql.Identifier(role), sql.Literal(password)))
    db_dsn = psycopg.conninfo.make_conninfo(admin_dsn, dbname=database)
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        for schema, (role, _password) in roles.items():
            conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                sql.Identifier(database), sql.Identifier(role)))
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {} AUTHORIZATION {}").format(
                sql.Identifier(schema), sql.Identifier(role)))


def role_url(admin_dsn: str, database: str, role: str, password: str) -> str:
    """The SQLAlchemy URL a service uses: its own role and database, on the server `admin_dsn` names
    (so TEST_PG_ADMIN_DSN or `make up --pg-admin-dsn` moves every service along with the bootstrap)."""
    from sqlalchemy.engine import URL

    params = psycopg.conninfo.conninfo_to_dict(admin_dsn)
    host, port = str(params.get("host") or "127.0.0.1"), params.get("port")
    socket_dir = host.startswith("/")  # a Unix socket folder goes in the query, not the authority
    return URL.create("postgresql+psycopg", username=role, password=password, host=None if socket_dir else host,
                      port=int(port) if port and not socket_dir else None, database=database,
                      query={"host": host, **({"port": str(port)} if port else {})} if socket_dir else {},
                      ).render_as_string(hide_password=False)


def drop_database(admin_dsn: str, database: str, roles: list[str] | None = None) -> None:
    """Drop a (test) database and, optionally, the roles that only it used."""
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
        for role in roles or []:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--admin-dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--database", default="triple")
    parser.add_argument("--role", action="append", default=[],
                        help="schema=role:password, once per service")
    args = parser.parse_args()
    roles = {}
    for spec in args.role:
        schema, rest = spec.split("=", 1)
        role, password = rest.split(":", 1)
        roles[schema] = (role, password)
    bootstrap(args.admin_dsn, args.database, roles)


if __name__ == "__main__":
    main()
