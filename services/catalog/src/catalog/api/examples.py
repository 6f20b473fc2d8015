"""Examples of the core path's bodies, shown in the public OpenAPI document (common.openapi)."""

COURSE_ID = "10000000-0000-4000-8000-000000000001"

EXAMPLES = {
    "CourseSummary": {"id": COURSE_ID, "slug": "protected-video-streaming-101",
                      "title": "Protected Video Streaming 101",
                      "subtitle": "Signed URLs, short-lived tokens and HLS, end to end", "price_amount": 4900,
                      "currency": "EUR", "is_free": False, "instructor_id": "20000000-0000-4000-8000-000000000002",
                      "instructor_ids": [], "lesson_count": 3, "level": "intermediate", "language": "en",
                      "category": "video", "tags": ["hls"], "cover_image_url": None, "duration_seconds": 12,
                      "published_at": "2026-01-05T10:00:00Z"},
    "LessonRead": {"id": "30000000-0000-4000-8000-000000000003", "title": "Signed URLs in practice", "kind": "video",
                   "position": 0, "is_preview": False, "duration_seconds": 6,
                   "asset_id": "40000000-0000-4000-8000-000000000002", "body": None},
    "CourseCreate": {"title": "HLS for beginners", "price_amount": 1950, "currency": "EUR", "level": "beginner"},
}
