"""Write a consortium's people as Keycloak users for the cluster edition's realm."""

from __future__ import annotations

from typing import Any

from sonobridge.node.consortium import Consortium


def keycloak_users(consortium: Consortium, demo_password: str | None = None) -> dict[str, Any]:
    """Return a Keycloak partial import (`<realm>-users-0.json`) of the consortium's people.

    Without `demo_password` nobody has a password: Keycloak asks each person to set one at their
    first login (county IT sends them a reset link); with it, every account gets the demo's.
    """
    users = []
    for person in consortium.people:
        user: dict[str, Any] = {
            "username": person.user,
            "firstName": person.name,
            "enabled": True,
            "emailVerified": False,
            "attributes": {"institution": [person.institution], "consortium": [consortium.id]},
            "realmRoles": sorted(person.roles),
        }
        if demo_password is None:
            user["requiredActions"] = ["UPDATE_PASSWORD"]
        else:
            user["credentials"] = [{"type": "password", "value": demo_password, "temporary": False}]
        users.append(user)
    return {"realm": "sonobridge", "users": users}
