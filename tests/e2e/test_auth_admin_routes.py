"""Role checks on every service, through the gateway, in both run modes.

The routes are read from each service's own router (so a new staff-only route anywhere is swept
without editing this file): every route whose dependencies include `require_roles(...)` without
"student". A student gets 403 on each, an anonymous caller 401; on the admin-only ones an
instructor gets 403 too, and an admin gets past the check (the control).
"""

from __future__ import annotations

import functools
import importlib
import inspect
import re
import uuid

import httpx
from fastapi.dependencies.models import Dependant
from fastapi.routing import iter_route_contexts

from .test_auth_tokens import new_account
from .test_core_path import DEMO_ADMIN, DEMO_INSTRUCTOR, login

SERVICES = ("auth", "catalog", "billing", "playback")


def _required_roles(dependant: Dependant | None) -> set[frozenset[str]]:
    """The role sets of every `require_roles` check in a route's dependency tree."""
    if dependant is None:
        return set()
    found = set()
    if dependant.call is not None and getattr(dependant.call, "__qualname__", "") == "require_roles.<locals>.check":
        found.add(frozenset(inspect.getclosurevars(dependant.call).nonlocals["roles"]))
    for child in dependant.dependencies:
        found |= _required_roles(child)
    return found


def _all_routes() -> list[tuple[str, str, str, set[frozenset[str]]]]:
    """(service, path, method, role sets it requires) of every route of every service."""
    routes = []
    for service in SERVICES:
        app = importlib.import_module(f"{service}.main").create_app()
        for route in iter_route_contexts(app.routes):
            roles = _required_roles(getattr(route, "dependant", None))
            routes += [(service, str(route.path), method, roles) for method in sorted(route.methods or ())]
    return routes


ALL_ROUTES = _all_routes()
# Every route a student must not pass: (service, path, method, the roles it allows).
STAFF_ROUTES = [(service, path, method, allowed) for service, path, method, role_sets in ALL_ROUTES
                for allowed in role_sets if "student" not in allowed]


def test_the_sweep_finds_the_known_admin_routes() -> None:
    found = {(service, path, method) for service, path, method, _ in STAFF_ROUTES}
    assert {("auth", "/admin/users/{user_id}/roles", "PUT"), ("billing", "/orders/{order_id}/refund", "POST"),
            ("catalog", "/admin/enrollments/{action}", "POST"),
            ("playback", "/admin/watermarks/{watermark}", "GET")} <= found
    assert {service for service, *_ in STAFF_ROUTES} == set(SERVICES)
    # Nothing under an /admin path goes without a role check that leaves students out.
    admin_paths = {(service, path, method) for service, path, method, _ in ALL_ROUTES if "/admin" in path}
    assert admin_paths and admin_paths <= found


def test_a_student_gets_403_on_every_staff_route(base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=15) as client:
        _email, _user_id, token = new_account(client, "student", "a student's passphrase")
        student = {"Authorization": f"Bearer {token}"}
        instructor, admin = login(client, *DEMO_INSTRUCTOR), login(client, *DEMO_ADMIN)
        some_id = str(uuid.uuid4())
        for service, template, method, roles in STAFF_ROUTES:
            path = f"/api/{service}" + re.sub(r"\{[^}]+\}", some_id, template)
            request = functools.partial(client.request, method, path,
                                        json={} if method in ("POST", "PUT", "PATCH") else None)
            where = (service, method, template)
            assert request(headers=student).status_code == 403, where
            assert request().status_code == 401, where
            if "instructor" not in roles:
                assert request(headers=instructor).status_code == 403, where
                # The control: an admin gets past the role check (a 404 or 422 for the made-up request).
                assert request(headers=admin).status_code not in (401, 403), where
