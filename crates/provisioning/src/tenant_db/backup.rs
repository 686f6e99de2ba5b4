//! The final backup: `pg_dump -Fc` as the admin role (its password in
//! `PGPASSWORD`, never on the command line) into a `.partial` file, synced
//! and renamed, so a dump under its final name is always complete; and
//! deprovisioning's backup-then-drop in one re-runnable step.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio_postgres::config::Host;

use std::os::unix::fs::PermissionsExt as _;

use super::{DatabaseServer, TenantDbError, TenantDbName};

impl DatabaseServer {
    /// Writes `pg_dump -Fc` of database `name` to
    /// `backup_dir/<name>-<UTC timestamp>.dump` (e.g.
    /// `t_acme-20261121T143000.123Z.dump`, created with the directory if need
    /// be) and returns that path. The file is `0600` and the directory
    /// `0700`: a dump holds a tenant's whole data. The dump is written to a `.partial` file,
    /// synced, then renamed, so a file with the final name is always a
    /// complete dump; a failed dump leaves no file.
    ///
    /// `pg_dump` connects as the admin role, its password in `PGPASSWORD`.
    ///
    /// # Errors
    /// [`TenantDbError::NoSuchDatabase`] when there is nothing to dump,
    /// [`TenantDbError::Dump`] when `pg_dump` fails, [`TenantDbError::Io`]
    /// for the directory or file, and connection errors.
    pub async fn backup(
        &self,
        name: &TenantDbName,
        backup_dir: &Path,
    ) -> Result<PathBuf, TenantDbError> {
        if !self.exists(name).await? {
            return Err(TenantDbError::NoSuchDatabase(name.clone()));
        }
        private_dir(backup_dir)
            .await
            .map_err(TenantDbError::io(format!(
                "create the backup directory {}",
                backup_dir.display()
            )))?;
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
        let path = backup_dir.join(format!("{name}-{stamp}.dump"));
        let partial = backup_dir.join(format!("{name}-{stamp}.dump.partial"));
        // Owner-only before pg_dump writes a byte (it keeps the mode).
        tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&partial)
            .await
            .map_err(TenantDbError::io(format!("create {}", partial.display())))?;

        let result = self.run_pg_dump(name, &partial).await;
        if let Err(e) = result {
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(e);
        }
        let synced = async {
            let file = tokio::fs::File::open(&partial).await?;
            file.sync_all().await?;
            tokio::fs::rename(&partial, &path).await?;
            // Make the rename itself durable.
            tokio::fs::File::open(backup_dir).await?.sync_all().await
        };
        if let Err(e) = synced.await {
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(TenantDbError::Io {
                action: format!("store the dump at {}", path.display()),
                source: e,
            });
        }
        Ok(path)
    }

    async fn run_pg_dump(&self, name: &TenantDbName, out: &Path) -> Result<(), TenantDbError> {
        let config = self.config()?;
        let mut cmd = tokio::process::Command::new(&self.pg_dump);
        cmd.arg("--format=custom")
            .arg("--no-password")
            .arg("--file")
            .arg(out)
            .arg("--dbname")
            .arg(name.as_str());
        match config.get_hosts().first() {
            Some(Host::Tcp(h)) => {
                cmd.arg("--host").arg(h);
            }
            Some(Host::Unix(p)) => {
                cmd.arg("--host").arg(p);
            }
            None => {}
        }
        if let Some(port) = config.get_ports().first() {
            cmd.arg("--port").arg(port.to_string());
        }
        if let Some(user) = config.get_user() {
            cmd.arg("--username").arg(user);
        }
        // Only the admin's password, and only through the environment.
        cmd.env_remove("PGPASSWORD")
            .env_remove("PGSERVICE")
            .env_remove("PGPASSFILE")
            .env(
                "PGCONNECT_TIMEOUT",
                self.connect_timeout.as_secs().max(2).to_string(),
            );
        if let Some(pw) = config.get_password() {
            let pw = String::from_utf8(pw.to_vec()).map_err(|_| {
                TenantDbError::Invalid("the admin password is not valid UTF-8".into())
            })?;
            cmd.env("PGPASSWORD", pw);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let output = cmd
            .output()
            .await
            .map_err(TenantDbError::io(format!("run {}", self.pg_dump.display())))?;
        if output.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        let transient = [
            "could not connect",
            "connection to server",
            "server closed the connection",
            "Connection refused",
            "timeout expired",
            "the database system is",
            "too many clients",
        ]
        .iter()
        .any(|m| stderr.contains(m));
        Err(TenantDbError::Dump {
            name: name.clone(),
            status: output.status.to_string(),
            stderr,
            transient,
        })
    }

    /// Deprovisioning in one re-runnable step: when database `name` exists,
    /// a final [`backup`](Self::backup) into `backup_dir` and then
    /// [`drop_database`](Self::drop_database), returning the dump's path;
    /// when it is already gone (a re-run after the drop), only the drop (it
    /// removes a role left behind) and `None`. Nothing is dropped when the
    /// backup fails.
    ///
    /// # Errors
    /// As [`backup`](Self::backup) and [`drop_database`](Self::drop_database).
    pub async fn backup_and_drop(
        &self,
        name: &TenantDbName,
        backup_dir: &Path,
    ) -> Result<Option<PathBuf>, TenantDbError> {
        let dump = match self.backup(name, backup_dir).await {
            Ok(path) => Some(path),
            Err(TenantDbError::NoSuchDatabase(_)) => None,
            Err(e) => return Err(e),
        };
        self.drop_database(name).await?;
        Ok(dump)
    }
}

/// Creates `dir` (and its parents) if need be and makes it `0700`: only the
/// control plane's user reads the dumps in it.
async fn private_dir(dir: &Path) -> std::io::Result<()> {
    tokio::fs::create_dir_all(dir).await?;
    tokio::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).await
}
