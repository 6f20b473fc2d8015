"""Examples of the core path's bodies, shown in the public OpenAPI document (common.openapi)."""

EXAMPLES = {
    "TokenRequest": {"lesson_id": "30000000-0000-4000-8000-000000000003"},
    "TokenResponse": {"token": "eyJhbGciOiJFZERTQSJ9.eyJhdWQiOiJwbGF5YmFjayJ9.c2ln", "expires_in": 90,
                      "manifest_url": "https://academy.example/api/playback/manifests/9f1e/master.m3u8?token=eyJ...",
                      "session_id": "9f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9", "watermark": "RQD4QLFB7OHTL7SB",
                      "resume_position_seconds": 42.5, "heartbeat_interval_seconds": 30},
    "HeartbeatRequest": {"position_seconds": 42.5},
}
