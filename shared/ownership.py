"""The ownership ledger: for one identity (a service principal), which grants exomi made and which of
exomi's targets need each of them. Pure domain rules, no I/O (``shared/state/ledger.py`` stores it).

Several targets can share an identity (a user-assigned identity used by two Automation accounts and a
VM), and each target may ask for another Entra role. So ownership is per grant, not per target:

* exomi owns a grant only if it made it (it was missing and exomi created it); a grant it found in place
  is somebody else's and exomi never removes it;
* a target *needs* a grant exomi owns while it is provisioned with it; provisioning a target that finds
  a grant exomi made for another target adds it as a needer;
* when a target stops needing a grant (it is revoked, its request is rolled back, it changes role), the
  grant is released for that target; exomi removes a grant nobody needs any more, whichever target it
  was first made for and whatever role each target asked for.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict


class GrantKind(StrEnum):
    APP_ROLE = "app-role"  # Exchange.ManageAsApp, an app role assignment on Office 365 Exchange Online
    ENTRA_ROLE = "entra-role"  # a directory role assignment


class Need(BaseModel):
    """A target that needs a grant, since which request."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    target: str  # canonical ARM id
    since_request: str


class OwnedGrant(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: GrantKind
    assignment_id: str
    name: str  # the app role value or the Entra role's display name, for people
    made_by_request: str
    needed_by: dict[str, Need] = {}  # target key -> need

    def needed_by_others(self, target_key: str) -> list[str]:
        return sorted(need.target for key, need in self.needed_by.items() if key != target_key)


class Ledger(BaseModel):
    """What exomi owns on one identity. Every change returns a new ledger (the caller stores it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    principal_id: str
    grants: tuple[OwnedGrant, ...] = ()
    etag: str | None = None  # set by the store: pass it back to save with optimistic concurrency

    # ----------------------------------------------------------------- questions

    def find(self, assignment_id: str) -> OwnedGrant | None:
        return next((g for g in self.grants if g.assignment_id == assignment_id), None)

    def owns(self, assignment_id: str) -> bool:
        return self.find(assignment_id) is not None

    def needed_by(self, target_key: str, kind: GrantKind | None = None) -> list[OwnedGrant]:
        """The grants ``target_key`` needs (of one kind)."""
        return [g for g in self.grants if target_key in g.needed_by and (kind is None or g.kind is kind)]

    def removable_without(self, target_key: str, kind: GrantKind | None = None) -> list[OwnedGrant]:
        """The grants ``target_key`` needs that no other target needs: what releasing it removes."""
        return [g for g in self.needed_by(target_key, kind) if not g.needed_by_others(target_key)]

    def added_by(self, target_key: str, request_id: str) -> list[OwnedGrant]:
        """The grants request ``request_id`` made ``target_key`` need: what rolling it back releases."""
        return [
            g
            for g in self.grants
            if target_key in g.needed_by and g.needed_by[target_key].since_request == request_id
        ]

    # ----------------------------------------------------------------- changes

    def record(
        self,
        kind: GrantKind,
        assignment_id: str,
        name: str,
        *,
        target_key: str,
        target: str,
        request_id: str,
        made_by_exomi: bool,
    ) -> Ledger:
        """``target`` holds ``assignment_id`` after ``request_id``: a grant exomi owns gains it as a needer
        (its first need is kept), a grant exomi made now becomes owned; a grant exomi found in place and
        does not own stays somebody else's (no change)."""
        existing = self.find(assignment_id)
        if existing is None:
            if not made_by_exomi:
                return self
            grant = OwnedGrant(
                kind=kind,
                assignment_id=assignment_id,
                name=name,
                made_by_request=request_id,
                needed_by={target_key: Need(target=target, since_request=request_id)},
            )
            return self._with([*self.grants, grant])
        if target_key in existing.needed_by:
            return self
        needs = {**existing.needed_by, target_key: Need(target=target, since_request=request_id)}
        return self._replace(existing, existing.model_copy(update={"needed_by": needs}))

    def release(self, target_key: str, assignment_id: str) -> Ledger:
        """``target_key`` no longer needs the grant (it stays owned, perhaps needed by nobody, until
        ``forget`` after exomi removed it)."""
        existing = self.find(assignment_id)
        if existing is None or target_key not in existing.needed_by:
            return self
        needs = {k: v for k, v in existing.needed_by.items() if k != target_key}
        return self._replace(existing, existing.model_copy(update={"needed_by": needs}))

    def forget(self, assignment_id: str) -> Ledger:
        """The grant is gone (exomi removed it, or it disappeared): nothing to own any more."""
        return self._with([g for g in self.grants if g.assignment_id != assignment_id])

    def _replace(self, old: OwnedGrant, new: OwnedGrant) -> Ledger:
        return self._with([new if g is old else g for g in self.grants])

    def _with(self, grants: list[OwnedGrant]) -> Ledger:
        return self.model_copy(update={"grants": tuple(grants)})
