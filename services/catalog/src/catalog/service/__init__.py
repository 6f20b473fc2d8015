"""Catalog use cases: authoring, curriculum and publication of courses, reading the catalog,
granting access.

Access follows billing: a paid order grants the enrollment, its refund revokes it. Order facts are
kept so that events arriving out of order (refund before payment) still end in the right state.
Every write that changes what the public sees marks the course dirty (`public_cache.mark_dirty`)
so cached answers are invalidated once the transaction commits.
"""

from .authoring import (
    change_status,
    create_category,
    create_course,
    list_categories,
    publish_course,
    slugify,
    update_course,
)
from .curriculum import (
    add_lesson,
    add_section,
    delete_lesson,
    delete_section,
    rename_section,
    reorder_curriculum,
    update_lesson,
)
from .enrollments import (
    admin_grant,
    admin_revoke,
    enroll_free,
    enrollment_audit,
    grant_enrollment,
    record_order_paid,
    record_order_refunded,
    revoke_enrollment,
)
from .erasure import erase_user
from .internal import (
    check_enrollment,
    internal_course,
    internal_course_lessons,
    internal_instructor_courses,
    internal_lesson,
    record_asset_deleted,
    record_asset_ready,
)
from .loading import ANNOUNCED_FIELDS, DETAIL_OPTIONS, MAX_SLUG_LENGTH, READ_OPTIONS, TRANSITIONS, Actor
from .reading import (
    caller_access,
    course_enrollments,
    course_view,
    full_published_course,
    get_course,
    list_published,
    list_taught,
    my_enrollments,
)

__all__ = [
    "ANNOUNCED_FIELDS",
    "DETAIL_OPTIONS",
    "MAX_SLUG_LENGTH",
    "READ_OPTIONS",
    "TRANSITIONS",
    "Actor",
    "add_lesson",
    "add_section",
    "admin_grant",
    "admin_revoke",
    "caller_access",
    "change_status",
    "check_enrollment",
    "course_enrollments",
    "course_view",
    "create_category",
    "create_course",
    "delete_lesson",
    "delete_section",
    "enroll_free",
    "enrollment_audit",
    "erase_user",
    "full_published_course",
    "get_course",
    "grant_enrollment",
    "internal_course",
    "internal_course_lessons",
    "internal_instructor_courses",
    "internal_lesson",
    "list_categories",
    "list_published",
    "list_taught",
    "my_enrollments",
    "publish_course",
    "record_asset_deleted",
    "record_asset_ready",
    "record_order_paid",
    "record_order_refunded",
    "rename_section",
    "reorder_curriculum",
    "revoke_enrollment",
    "slugify",
    "update_course",
    "update_lesson",
]
