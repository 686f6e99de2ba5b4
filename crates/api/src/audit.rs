//! Writing activity-log rows: who did what, to what, from where.

use tenantry_store::{AsyncPgConnection, StoreError, activity::Activity};
use uuid::Uuid;

use crate::auth::{ClientInfo, Principal};

/// One activity row being built.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    row: Activity,
}

impl AuditEvent {
    /// An action by an authenticated caller, in their tenant when they have one.
    pub fn by(principal: &Principal, action: &str) -> Self {
        let mut e = Self::anonymous(&principal.label(), action);
        e.row.actor_id = Some(principal.user_id);
        e.row.actor_token_id = principal.token.as_ref().map(|t| t.id);
        e.row.tenant_id = principal.tenant_id;
        e
    }

    /// An action by someone not (yet) authenticated, e.g. a failed login;
    /// `label` is what identifies them (the email tried).
    pub fn anonymous(label: &str, action: &str) -> Self {
        Self {
            row: Activity {
                id: Uuid::now_v7(),
                occurred_at: chrono::Utc::now(),
                actor_id: None,
                actor_token_id: None,
                actor_label: label.chars().take(254).collect(),
                tenant_id: None,
                action: action.to_owned(),
                target_type: None,
                target_id: None,
                before: None,
                after: None,
                client_ip: None,
                user_agent: None,
                request_id: None,
            },
        }
    }

    /// The user the action was by (known after the password check).
    pub fn actor(mut self, user_id: Uuid, tenant_id: Option<Uuid>) -> Self {
        self.row.actor_id = Some(user_id);
        self.row.tenant_id = tenant_id;
        self
    }

    /// The tenant concerned.
    pub fn tenant(mut self, tenant_id: Option<Uuid>) -> Self {
        self.row.tenant_id = tenant_id;
        self
    }

    /// What was acted on.
    pub fn target(mut self, kind: &str, id: impl ToString) -> Self {
        self.row.target_type = Some(kind.to_owned());
        self.row.target_id = Some(id.to_string());
        self
    }

    /// State before and after (`None` where it does not apply).
    pub fn change(
        mut self,
        before: Option<serde_json::Value>,
        after: Option<serde_json::Value>,
    ) -> Self {
        self.row.before = before;
        self.row.after = after;
        self
    }

    /// Appends the row, with the client's details.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn record(
        mut self,
        conn: &mut AsyncPgConnection,
        client: &ClientInfo,
    ) -> Result<(), StoreError> {
        self.row.client_ip = client.ip.map(|ip| ip.to_string());
        self.row.user_agent.clone_from(&client.user_agent);
        self.row.request_id.clone_from(&client.request_id);
        tenantry_store::activity::record(conn, &self.row).await
    }
}
