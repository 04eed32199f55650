"""Drives Slipway through a client generated from its OpenAPI document by
openapi-python-client (tests/tests/e2e/contract.rs generates it, then runs this with the
generated package's directory on sys.path): one call of each kind, each answer parsed
into the generated models. Prints one line per call; exits non-zero at the first
answer that is not what the document promised.

    python client_check.py URL ADMIN_PASSWORD
"""

import sys

from slipway_client import AuthenticatedClient, Client
from slipway_client.api.services import create_service, delete_service, get_service, list_services, update_service
from slipway_client.api.session import current_user, login
from slipway_client.api.teams import create_team, set_quota
from slipway_client.models import (
    CreateService,
    CreateTeam,
    CurrentUser,
    LoginRequest,
    LoginResponse,
    PageService,
    Problem,
    Service,
    SetQuota,
    Team,
    TeamQuota,
    UpdateService,
)
from slipway_client.models.update_service_tier_type_1 import UpdateServiceTierType1

url, password = sys.argv[1], sys.argv[2]


def expect(what, response, status, model):
    parsed = response.parsed
    ok = int(response.status_code) == status and isinstance(parsed, model)
    print(f"{what}: {int(response.status_code)} {type(parsed).__name__}")
    if not ok:
        sys.exit(f"{what}: expected {status} {model.__name__}, got {response.status_code} {response.content!r}")
    return parsed


# A POST without a token, answered with a model.
anonymous = Client(base_url=url, raise_on_unexpected_status=True)
session = expect(
    "login", login.sync_detailed(client=anonymous, body=LoginRequest(username="admin", password=password)), 200, LoginResponse
)
client = AuthenticatedClient(base_url=url, token=session.token, raise_on_unexpected_status=True)

# A GET without parameters.
me = expect("current user", current_user.sync_detailed(client=client), 200, CurrentUser)
assert me.username == "admin" and me.admin

# POSTs with bodies: 201 and the created model.
team = expect("create team", create_team.sync_detailed(client=client, body=CreateTeam(name="clients")), 201, Team)
assert team.name == "clients"
for name in ["gen-a", "gen-b", "gen-c"]:
    created = expect(f"create service {name}", create_service.sync_detailed(client=client, body=CreateService(name=name, team="clients")), 201, Service)
    assert created.team == "clients"

# A GET with a path parameter, and a list followed page by page through its cursor.
shop = expect("get service", get_service.sync_detailed("gen-b", client=client), 200, Service)
assert shop.name == "gen-b"
names, cursor = [], None
while True:
    kwargs = {"cursor": cursor} if cursor else {}
    page = expect("list services", list_services.sync_detailed(client=client, team="clients", limit=2, **kwargs), 200, PageService)
    names += [s.name for s in page.items]
    cursor = page.next_cursor if isinstance(page.next_cursor, str) else None
    if not cursor:
        break
assert names == ["gen-a", "gen-b", "gen-c"], names

# A PATCH and a PUT.
updated = expect(
    "update service",
    update_service.sync_detailed("gen-b", client=client, body=UpdateService(description="made by a generated client", tier=UpdateServiceTierType1.TIER_1)),
    200,
    Service,
)
assert updated.description == "made by a generated client" and updated.tier == "tier-1"
quota = expect("set quota", set_quota.sync_detailed("clients", client=client, body=SetQuota(max_environments=3)), 200, TeamQuota)
assert quota.max_environments == 3

# A DELETE answered 204, then the error it leaves: a problem document, parsed.
gone = delete_service.sync_detailed("gen-c", client=client)
print(f"delete service: {gone.status_code}")
assert int(gone.status_code) == 204
missing = expect("get deleted service", get_service.sync_detailed("gen-c", client=client), 404, Problem)
assert missing.detail == 'service "gen-c" does not exist', missing.detail
print("the generated client works")
