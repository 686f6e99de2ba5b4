//! `tenantry admin create`: bootstrapping administrators from the command line.

use std::sync::Arc;

use secrecy::SecretString;
use tenantry_domain::Role;
use tenantry_store::identity::User;

use crate::{ApiError, auth, config::Settings, error::error_chain};

/// Creates an admin and records it in the activity log (actor `cli`).
///
/// # Errors
/// Invalid email or password (each named), a taken email, or a database error.
pub async fn create_admin(
    settings: &Settings,
    email: &str,
    password: &SecretString,
) -> anyhow::Result<User> {
    let pool = settings.cli_pool()?;
    let hasher = Arc::new(auth::password::Hasher::new(
        settings.auth.argon2_memory_kib,
        settings.auth.argon2_iterations,
        settings.auth.argon2_parallelism,
    )?);
    let user = auth::service::create_user(&pool, &hasher, email, password, Role::Admin, None)
        .await
        .map_err(|e| match e {
            ApiError::Validation { errors, .. } => anyhow::anyhow!(
                "{}",
                errors
                    .iter()
                    .map(|f| format!("{}: {}", f.field, f.message))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            other => anyhow::anyhow!("{}", error_chain(&other)),
        })?;
    let mut conn = pool.get().await?;
    crate::audit::by_anonymous("cli", "user.created", &auth::ClientInfo::default())
        .target("user", user.id)
        .change(
            None,
            Some(serde_json::json!({"email": user.email, "role": user.role})),
        )
        .record(&mut conn)
        .await?;
    Ok(user)
}
