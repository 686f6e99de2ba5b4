//! What a tenant service call can answer besides success.

use tenantry_domain::ValidationErrors;
use tenantry_store::StoreError;

/// Why a tenant service call did nothing. The API maps each variant to one
/// status: 404, 422, 409 (with `code`), 412, 503, 500.
#[derive(Debug, thiserror::Error)]
pub enum TenancyError {
    /// No such tenant, invitation or member visible to the caller.
    #[error("{0} not found")]
    NotFound(String),
    /// Input refused, naming each bad field.
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
    /// Refused by the current state; `code` is the stable machine code
    /// (`slug-taken`, `email-taken`, `invalid-transition`).
    #[error("{detail}")]
    Conflict {
        /// Stable machine code.
        code: &'static str,
        /// What to do about it.
        detail: String,
    },
    /// The `If-Match` version is stale.
    #[error("{0}")]
    PreconditionFailed(String),
    /// The payment provider is unreachable: retry later.
    #[error("unavailable")]
    Unavailable(#[source] anyhow::Error),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A bug or an impossible state.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl TenancyError {
    pub(crate) fn conflict(code: &'static str, detail: String) -> Self {
        Self::Conflict { code, detail }
    }
}

impl From<tenantry_store::DieselError> for TenancyError {
    fn from(e: tenantry_store::DieselError) -> Self {
        Self::Store(e.into())
    }
}

impl From<tenantry_store::tenants::TransitionError> for TenancyError {
    fn from(e: tenantry_store::tenants::TransitionError) -> Self {
        use tenantry_store::tenants::TransitionError;
        match e {
            TransitionError::Invalid(e) => Self::conflict(
                "invalid-transition",
                format!("{e} (current: {}, requested: {})", e.from, e.to),
            ),
            TransitionError::Store(e) => Self::Store(e),
        }
    }
}
