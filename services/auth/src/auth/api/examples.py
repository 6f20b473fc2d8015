"""Examples of the core path's bodies, shown in the public OpenAPI document (common.openapi)."""

EXAMPLES = {
    "UserCreate": {"email": "ada@example.com", "password": "correct horse battery staple", "full_name": "Ada Lovelace"},
    "UserRead": {"id": "7d1c1a8e-3c55-4a8e-9c9e-0d5f3a1f2b10", "email": "ada@example.com", "full_name": "Ada Lovelace",
                 "roles": ["student"], "is_active": True, "email_verified": False,
                 "created_at": "2026-01-05T10:00:00Z"},
    "LoginRequest": {"email": "ada@example.com", "password": "correct horse battery staple",
                     "refresh_transport": "cookie"},
    "TokenPair": {"access_token": "eyJhbGciOiJFZERTQSIsImtpZCI6IjEifQ.eyJzdWIiOiIuLi4ifQ.c2ln", "token_type": "bearer",
                  "expires_in": 900},
    "CodeBody": {"code": "1ace6634929b6da05ed0f207e8a0aed22f5c7c36ffa590c5"},
}
