"""The error taxonomy: stable codes, the category the engine acts on, messages that say how to fix."""

from __future__ import annotations

from shared.errors import (
    ConcurrencyError,
    Conflict,
    ErrorCategory,
    IdempotencyConflict,
    InputError,
    NotFound,
    PermissionMissing,
    PolicyRefusal,
    ReplicationPending,
    Transient,
)


def test_categories_tell_the_engine_what_to_do():
    assert Transient("throttled", retry_after=2).category is ErrorCategory.TRANSIENT
    assert ConcurrencyError("request x").category is ErrorCategory.TRANSIENT
    assert ReplicationPending("6a2b5c1e-0d3f-4e8a-9b7c-1d2e3f4a5b6c").category is ErrorCategory.REPLICATION
    finals = [
        InputError("organization", "bad"),
        PolicyRefusal("allowed_roles", "role 'x' is not allowed.", "ask"),
        PermissionMissing("RoleManagement.ReadWrite.Directory", "Microsoft Graph", "grant it"),
        NotFound("request", "r1"),
        Conflict("busy", active_request_id="r1"),
    ]
    assert all(error.category is ErrorCategory.FINAL and not error.retryable for error in finals)
    assert Transient("x").retryable


def test_each_error_renders_code_message_and_details():
    assert InputError("target", "must be an ARM resource id").to_dict() == {
        "code": "InvalidInput",
        "message": "target: must be an ARM resource id",
        "field": "target",
        "problems": [{"field": "target", "message": "must be an ARM resource id"}],
    }
    missing = PermissionMissing(
        "AppRoleAssignment.ReadWrite.All",
        "Microsoft Graph",
        "grant exomi's identity the Graph application permission AppRoleAssignment.ReadWrite.All",
    )
    assert missing.to_dict()["permission"] == "AppRoleAssignment.ReadWrite.All"
    assert "AppRoleAssignment.ReadWrite.All" in missing.message and "To fix:" in missing.message
    assert Transient("busy", retry_after=3).to_dict()["retry_after"] == 3
    assert Conflict("busy", active_request_id="r1").to_dict()["active_request_id"] == "r1"
    reused = IdempotencyConflict("r0")
    assert reused.code == "IdempotencyKeyReused" and reused.http_status == 409
    assert reused.to_dict()["original_request_id"] == "r0"
    assert NotFound("request", "r9").http_status == 404
    assert PolicyRefusal("callback_hosts", "no.", "ask.").to_dict()["rule"] == "callback_hosts"
