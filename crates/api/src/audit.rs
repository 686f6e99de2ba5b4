//! Activity rows written by handlers: the store's one builder
//! ([`Entry`]) with the authenticated caller and the client's details
//! filled in, and the same caller as the tenant services see it.

use tenantry_store::activity::{Actor, Entry};
use tenantry_tenancy::Caller;

use crate::auth::{ClientInfo, Principal};

/// The activity log's actor for an authenticated caller on this request.
pub fn actor(principal: &Principal, client: &ClientInfo) -> Actor {
    Actor {
        user_id: Some(principal.user_id),
        token_id: principal.token.as_ref().map(|t| t.id),
        label: principal.label(),
        ..anonymous(&principal.label(), client)
    }
}

/// The activity log's actor for someone not (yet) authenticated, known by
/// `label` (the email tried at a failed login, the one signing up).
pub fn anonymous(label: &str, client: &ClientInfo) -> Actor {
    Actor {
        user_id: None,
        token_id: None,
        label: label.to_owned(),
        client_ip: client.ip.map(|ip| ip.to_string()),
        user_agent: client.user_agent.clone(),
        request_id: client.request_id.clone(),
    }
}

/// The caller as the tenant services take it.
pub fn caller(principal: &Principal, client: &ClientInfo) -> Caller {
    Caller {
        actor: actor(principal, client),
        tenant_id: principal.tenant_id,
    }
}

/// Someone not signed in (signing up, accepting an invitation), as the
/// tenant services take them.
pub fn anonymous_caller(label: &str, client: &ClientInfo) -> Caller {
    Caller {
        actor: anonymous(label, client),
        tenant_id: None,
    }
}

/// The caller as the tenant services take it, for a read (no client details
/// are recorded by reads).
pub fn viewer(principal: &Principal) -> Caller {
    caller(principal, &ClientInfo::default())
}

/// An activity row of `action` by `principal` on this request, in their
/// tenant when they have one.
pub fn by(principal: &Principal, action: &str, client: &ClientInfo) -> Entry {
    Entry::by(&actor(principal, client), action).tenant(principal.tenant_id)
}

/// An activity row of `action` by someone known only by `label`.
pub fn by_anonymous(label: &str, action: &str, client: &ClientInfo) -> Entry {
    Entry::by(&anonymous(label, client), action)
}
