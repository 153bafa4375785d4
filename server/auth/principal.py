"""Who is calling and what they may do: roles, permissions and tenant resolution."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from server.core.errors import forbidden, invalid_argument

ALL_TENANTS: Final = "*"
TENANT_PATTERN: Final = re.compile(r"[a-z0-9-]{1,63}")


class Role(StrEnum):
    INGEST = "ingest"  # append only: least privilege for agents that never read
    READER = "reader"
    WRITER = "writer"
    REVIEWER = "reviewer"
    ADMIN = "admin"


class Permission(StrEnum):
    READ = "read"
    APPEND = "append"
    REVIEW = "review"
    ADMIN = "admin"


ROLE_PERMISSIONS: Final[dict[Role, frozenset[Permission]]] = {
    Role.INGEST: frozenset({Permission.APPEND}),
    Role.READER: frozenset({Permission.READ}),
    Role.WRITER: frozenset({Permission.READ, Permission.APPEND}),
    Role.REVIEWER: frozenset({Permission.READ, Permission.REVIEW}),
    Role.ADMIN: frozenset(Permission),
}


def is_tenant_id(text: str) -> bool:
    return TENANT_PATTERN.fullmatch(text) is not None


def check_tenant_id(text: str) -> str:
    if not is_tenant_id(text):
        raise invalid_argument(
            f"Invalid tenant id {text!r}: use 1-63 lowercase letters, digits and hyphens"
        )
    return text


@dataclass(frozen=True, slots=True)
class Principal:
    key_id: str
    name: str
    tenants: frozenset[str]
    roles: frozenset[Role]

    @property
    def all_tenants(self) -> bool:
        return ALL_TENANTS in self.tenants

    @property
    def permissions(self) -> frozenset[Permission]:
        granted: set[Permission] = set()
        for role in self.roles:
            granted |= ROLE_PERMISSIONS[role]
        return frozenset(granted)

    def can(self, permission: Permission) -> bool:
        return permission in self.permissions

    def require(self, permission: Permission) -> None:
        if not self.can(permission):
            roles = ", ".join(sorted(self.roles)) or "none"
            raise forbidden(f"This API key (roles: {roles}) lacks the '{permission}' permission")

    def tenant_for(self, requested: str | None) -> str:
        """The tenant a request acts on: the key's only tenant, or the one it names."""
        if requested:
            check_tenant_id(requested)
            if not self.all_tenants and requested not in self.tenants:
                raise forbidden(f"This API key cannot access tenant '{requested}'")
            return requested
        if not self.all_tenants and len(self.tenants) == 1:
            return next(iter(self.tenants))
        raise invalid_argument(
            "This API key spans several tenants: name one with the X-Tenant-ID header "
            "(or the `tenant` field of connection_init)"
        )
