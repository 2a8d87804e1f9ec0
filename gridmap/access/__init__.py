"""Access control: users and roles scoped to areas, password hashing, masking policy and the audit log.

Domain code: imports SQLAlchemy and the store, never Dash or Flask (the web
sign-in is :mod:`gridmap.dashboard.auth`).
"""

from gridmap.access.audit import (
    UNMASKABLE,
    PermissionDenied,
    audit,
    read_elder,
    unmask,
    unusual_access_report,
)
from gridmap.access.keys import session_secret
from gridmap.access.passwords import hash_password, needs_rehash, password_problem, verify_password
from gridmap.access.policy import PERSONAL_FIELDS, mask_frame, mask_record, mask_value
from gridmap.access.scope import (
    EDITABLE,
    Scope,
    can_edit,
    can_see_elder,
    can_unmask,
    community_clause,
    elder_clause,
    filter_frame,
    grid_clause,
    related_clause,
    steward_clause,
    street_clause,
    visible_elder_ids,
)
from gridmap.access.sessions import (
    end_session,
    end_user_sessions,
    list_sessions,
    session_user_id,
    start_session,
)
from gridmap.access.users import (
    RateLimited,
    User,
    add_user,
    audit_name,
    authenticate,
    create_demo_users,
    disable_user,
    end_sessions,
    list_users,
    load_user,
    load_user_by_id,
    set_password,
    set_role,
)

__all__ = [
    "EDITABLE", "PERSONAL_FIELDS", "UNMASKABLE", "PermissionDenied", "RateLimited", "Scope", "User",
    "add_user", "audit", "audit_name", "authenticate", "can_edit", "can_see_elder", "can_unmask",
    "community_clause", "create_demo_users", "disable_user", "elder_clause", "end_session", "end_sessions",
    "end_user_sessions", "filter_frame", "grid_clause", "hash_password", "list_sessions", "list_users",
    "load_user", "load_user_by_id", "mask_frame", "mask_record", "mask_value", "needs_rehash",
    "password_problem", "read_elder", "related_clause", "session_secret", "session_user_id", "set_password",
    "set_role", "start_session", "steward_clause", "street_clause", "unmask", "unusual_access_report",
    "verify_password", "visible_elder_ids",
]
