"""The main path through a client generated from openapi/openapi.json by
openapi-python-client, used as generated: signup -> login -> tenant read ->
plan-change preview -> plan-change request. Run by the Rust test
`spec_client::a_client_generated_from_the_spec_drives_the_main_path`, which
generates the client (on PYTHONPATH) and starts the server.

Usage: python3 main_path.py BASE_URL
Exits non-zero, saying what failed, when a step does not answer as the spec says.
"""

import sys

from tenantry_api_client import AuthenticatedClient, Client
from tenantry_api_client.api.auth import login
from tenantry_api_client.api.billing import preview, request
from tenantry_api_client.api.tenants import get_one, signup
from tenantry_api_client.models import (
    ChangeInput,
    CreatedTenant,
    LoginInput,
    PlanChangeOutcome,
    Preview,
    PreviewInput,
    SignupInput,
    Tenant,
    TokenResponse,
)

base = sys.argv[1]
password = "correct horse battery staple"
anonymous = Client(base_url=base, raise_on_unexpected_status=True)


def check(step, response, status, model):
    if response.status_code != status or not isinstance(response.parsed, model):
        sys.exit(f"{step}: HTTP {response.status_code}, {response.parsed!r} (wanted {status} {model.__name__})")
    print(f"{step}: {status} {model.__name__}")
    return response.parsed


created = check(
    "signup",
    signup.sync_detailed(
        client=anonymous,
        body=SignupInput(
            company_name="Spec Client Ltd",
            slug="spec-client",
            email="owner@spec-client.test",
            password=password,
            product="inventory",
            plan="free",
        ),
    ),
    202,
    CreatedTenant,
)
tenant_id = str(created.tenant.id)

token = check(
    "login",
    login.sync_detailed(
        client=anonymous,
        body=LoginInput(email="owner@spec-client.test", password=password),
    ),
    200,
    TokenResponse,
)
owner = AuthenticatedClient(base_url=base, token=token.access_token, raise_on_unexpected_status=True)

tenant = check("tenant read", get_one.sync_detailed(tenant_id, client=owner), 200, Tenant)
assert tenant.slug == "spec-client" and tenant.plan == "free", tenant

quote = check(
    "plan-change preview",
    preview.sync_detailed(tenant_id, client=owner, body=PreviewInput(plan="starter")),
    200,
    Preview,
)
assert quote.kind == "upgrade", quote

outcome = check(
    "plan-change request",
    request.sync_detailed(
        tenant_id,
        client=owner,
        body=ChangeInput(plan="starter", proration_date=quote.proration_date),
    ),
    202,
    PlanChangeOutcome,
)
assert outcome.plan_change.to_plan == "starter", outcome
print("main path: OK")
