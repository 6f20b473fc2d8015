"""Admin: search users, change roles, disable/enable; a student gets 403 on every admin route."""

from __future__ import annotations

import re
import uuid
from typing import Any

from auth_testkit import BILLING_SECRET, Auth, bearer, claims, random_ip
from fastapi.dependencies.models import Dependant
from fastapi.routing import iter_route_contexts

from auth.api.deps import admin_account


def _needs_admin(dependant: Dependant | None) -> bool:
    return dependant is not None and (dependant.call is admin_account
                                      or any(_needs_admin(d) for d in dependant.dependencies))


def _routes(auth: Auth) -> list[tuple[str, str, Dependant | None]]:
    """(path, method, dependant) of every route the app serves, read from the router (not from the
    OpenAPI document, which leaves out `include_in_schema=False` routes)."""
    return [(route.path, method, getattr(route, "dependant", None))
            for route in iter_route_contexts(auth.app.routes) if route.path
            for method in route.methods or ()]


async def test_every_admin_route_is_guarded_and_every_guarded_route_is_found(auth: Auth) -> None:
    """A new route under /admin without the admin dependency, or an admin-only route elsewhere,
    fails here before it ships."""
    routes = _routes(auth)
    under_admin = {(path, method) for path, method, _ in routes if path.startswith("/admin")}
    guarded = {(path, method) for path, method, dependant in routes if _needs_admin(dependant)}
    assert under_admin == guarded
    assert len(guarded) >= 6 and len(routes) > len(guarded) + 20


async def test_a_student_gets_403_on_every_admin_route(auth: Auth) -> None:
    _student, student = await auth.user_with_tokens()
    instructor_user, _ = await auth.user_with_tokens()
    admin = bearer(await auth.admin_tokens())
    await auth.client.put(f"/admin/users/{instructor_user['id']}/roles", headers=admin,
                          json={"roles": ["instructor"]})
    instructor = await auth.login(instructor_user["email"])
    service = await auth.service_token("billing", BILLING_SECRET)
    admin_routes = sorted((path, method) for path, method, dependant in _routes(auth) if _needs_admin(dependant))
    assert len(admin_routes) >= 6
    some_id = str(uuid.uuid4())
    for template, method in admin_routes:
        path = re.sub(r"\{[^}]+\}", some_id, template)
        body = {"roles": ["admin"]} if method == "PUT" else None
        for caller in (student, instructor, service):
            response = await auth.client.request(method, path, headers=bearer(caller), json=body)
            assert response.status_code == 403, (method, path, response.text)
        assert (await auth.client.request(method, path, json=body)).status_code == 401
        # The control: the same request from an admin gets past the guard (200, or 404 for the random id).
        assert (await auth.client.request(method, path, headers=admin, json=body)).status_code in (200, 404)
    # Nothing changed on the way: the student is still a student.
    assert claims((await auth.login(_student["email"]))["access_token"])["roles"] == ["student"]


async def test_list_and_search_users_paginated(auth: Auth) -> None:
    admin = bearer(await auth.admin_tokens())
    tag = uuid.uuid4().hex[:8]
    for i in range(3):
        await auth.register(f"search-{tag}-{i}@example.com", full_name=f"Searchable {tag} {i}")
    page1 = (await auth.client.get("/admin/users", headers=admin, params={"q": tag, "page_size": 2})).json()
    assert page1["total"] == 3 and len(page1["items"]) == 2 and page1["page"] == 1
    page2 = (await auth.client.get("/admin/users", headers=admin, params={"q": tag, "page_size": 2, "page": 2})).json()
    assert len(page2["items"]) == 1
    assert {u["email"] for u in page1["items"] + page2["items"]} == {f"search-{tag}-{i}@example.com" for i in range(3)}
    by_name = (await auth.client.get("/admin/users", headers=admin, params={"q": f"SEARCHABLE {tag} 1"})).json()
    assert [u["full_name"] for u in by_name["items"]] == [f"Searchable {tag} 1"]
    admins = (await auth.client.get("/admin/users", headers=admin, params={"role": "admin"})).json()
    assert all("admin" in u["roles"] for u in admins["items"]) and admins["total"] >= 1
    # LIKE wildcards in the query are text, not patterns.
    assert (await auth.client.get("/admin/users", headers=admin, params={"q": "%"})).json()["total"] == 0
    assert (await auth.client.get("/admin/users", headers=admin, params={"page_size": 1000})).status_code == 422


async def test_change_roles(auth: Auth) -> None:
    admin_tokens = await auth.admin_tokens()
    admin = bearer(admin_tokens)
    user, tokens = await auth.user_with_tokens()
    changed = await auth.client.put(f"/admin/users/{user['id']}/roles", headers=admin,
                                    json={"roles": ["instructor", "student"]})
    assert changed.status_code == 200 and changed.json()["roles"] == ["instructor", "student"]
    # The next refresh carries the new roles.
    refreshed = await auth.client.post("/refresh", json={"refresh_token": tokens["refresh_token"]})

    assert claims(refreshed.json()["access_token"])["roles"] == ["instructor", "student"]
    [entry] = await auth.audit("role_change", user["id"])
    assert entry.details == {"before": ["student"], "after": ["instructor", "student"]}
    assert entry.actor == claims(admin_tokens["access_token"])["sub"]
    bodies: list[dict[str, Any]] = [{"roles": []}, {"roles": ["root"]}, {"roles": ["admin"], "extra": 1}]
    for bad in bodies:
        assert (await auth.client.put(f"/admin/users/{user['id']}/roles", headers=admin, json=bad)).status_code == 422
    own = claims(admin_tokens["access_token"])["sub"]
    demote = await auth.client.put(f"/admin/users/{own}/roles", headers=admin, json={"roles": ["student"]})
    assert demote.status_code == 409
    missing = await auth.client.put(f"/admin/users/{uuid.uuid4()}/roles", headers=admin, json={"roles": ["student"]})
    assert missing.status_code == 404


async def test_a_demoted_admin_loses_admin_routes_at_once(auth: Auth) -> None:
    admin = bearer(await auth.admin_tokens())
    user = await auth.register()
    await auth.client.put(f"/admin/users/{user['id']}/roles", headers=admin, json={"roles": ["admin"]})
    promoted = await auth.login(user["email"])
    assert (await auth.client.get("/admin/users", headers=bearer(promoted))).status_code == 200
    await auth.client.put(f"/admin/users/{user['id']}/roles", headers=admin, json={"roles": ["student"]})
    # Its access token still says admin; the account no longer is one.
    assert (await auth.client.get("/admin/users", headers=bearer(promoted))).status_code == 403


async def test_disable_and_enable(auth: Auth) -> None:
    admin_tokens = await auth.admin_tokens()
    admin = bearer(admin_tokens)
    user, tokens = await auth.user_with_tokens()
    disabled = await auth.client.post(f"/admin/users/{user['id']}/disable", headers=admin)
    assert disabled.status_code == 200 and disabled.json()["is_active"] is False
    assert disabled.json()["disabled_at"]
    [event] = await auth.events("auth.user.disabled.v1", user_id=user["id"])
    assert set(event) == {"user_id", "disabled_at"}
    # Sessions ended, access refused here, login refused with the same answer as a wrong password.
    assert (await auth.client.post("/refresh", json={"refresh_token": tokens["refresh_token"]})).status_code == 401
    assert (await auth.client.get("/me", headers=bearer(tokens))).status_code == 401
    refused = await auth.client.post("/login", json={"email": user["email"], "password": "correct horse battery"},
                                     headers={"X-Real-IP": random_ip()})
    assert refused.status_code == 401 and refused.json()["detail"] == "email or password is incorrect"
    # Disabling twice emits nothing new; an admin cannot disable themselves.
    await auth.client.post(f"/admin/users/{user['id']}/disable", headers=admin)
    assert len(await auth.events("auth.user.disabled.v1", user_id=user["id"])) == 1

    own = claims(admin_tokens["access_token"])["sub"]
    assert (await auth.client.post(f"/admin/users/{own}/disable", headers=admin)).status_code == 409

    enabled = await auth.client.post(f"/admin/users/{user['id']}/enable", headers=admin)
    assert enabled.status_code == 200 and enabled.json()["is_active"] is True
    await auth.login(user["email"])
    actions = [e.action for e in await auth.audit("user_disable", user["id"])] + \
        [e.action for e in await auth.audit("user_enable", user["id"])]
    assert actions == ["user_disable", "user_enable"]
    detail = (await auth.client.get(f"/admin/users/{user['id']}", headers=admin)).json()
    assert detail["id"] == user["id"] and detail["disabled_at"] is None


async def test_admin_reads_the_audit_log(auth: Auth) -> None:
    admin = bearer(await auth.admin_tokens())
    user, _tokens = await auth.user_with_tokens()
    page = (await auth.client.get("/admin/audit", headers=admin, params={"user_id": user["id"]})).json()
    assert {e["action"] for e in page["items"]} >= {"register", "login"}
    assert all(e["ip"] for e in page["items"] if e["action"] == "login")
