//! The `tenantry` command line (clap).

use std::{ffi::OsString, path::PathBuf};

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::config::{SettingsArgs, read_config_file};

const AFTER_HELP: &str = "\
Configuration: flags > environment variables > the --config TOML file (keys are the flags' \
names in snake_case, e.g. listen = \"0.0.0.0:8080\") > defaults. Each flag above names its variable.

Also read by `make run` / `make demo` / `make test` (not by this binary; README.md, Configuration):
  TENANTRY_DATA_DIR   where `make run` keeps its private PostgreSQL cluster and demo secrets [default: ./var]
  TENANTRY_PG_PORT    port of that cluster [default: 54329; `make test` uses 54330]
  PG_BIN              directory of the PostgreSQL server binaries [default: newest /usr/lib/postgresql/*/bin]
  TENANTRY_PVE_SIM_LISTEN, TENANTRY_STRIPE_SIM_LISTEN, TENANTRY_DOCKER_NODE…  the simulators `make run` starts";

/// Tenantry: the control plane of a multi-tenant SaaS host.
#[derive(Parser)]
#[command(name = "tenantry", version, about, after_help = AFTER_HELP, after_long_help = AFTER_HELP)]
pub struct Cli {
    /// Optional TOML file of settings.
    /// (An empty value, as `.env.sample` ships it, means none.)
    #[arg(long, env = "TENANTRY_CONFIG", global = true)]
    pub config: Option<String>,

    /// Settings.
    #[command(flatten)]
    pub settings: SettingsArgs,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply pending migrations (under an advisory lock) and serve the HTTP API
    /// (and `TENANTRY_WORKERS` job workers).
    Serve,
    /// Run job workers only (at least one), until SIGTERM or Ctrl-C.
    Worker,
    /// Manage database migrations.
    Migrate {
        /// Migration action.
        #[command(subcommand)]
        action: MigrateAction,
    },
    /// Print the OpenAPI 3.1 document as JSON.
    Openapi,
    /// Manage the product catalog.
    Catalog {
        /// Catalog action.
        #[command(subcommand)]
        action: CatalogAction,
    },
    /// Billing: run the processor (due plan changes, renewals, dunning).
    Billing {
        /// Billing action.
        #[command(subcommand)]
        action: BillingAction,
    },
    /// Stripe: sync the catalog, reconcile missed events.
    Stripe {
        /// Stripe action.
        #[command(subcommand)]
        action: StripeAction,
    },
    /// Manage platform administrators.
    Admin {
        /// Admin action.
        #[command(subcommand)]
        action: AdminAction,
    },
}

/// `tenantry billing …`
#[derive(Debug, Subcommand)]
pub enum BillingAction {
    /// Run the billing processor once, now (for cron): apply due plan
    /// changes, expire unpaid upgrades, charge renewals, suspend and
    /// terminate overdue subscriptions. Safe to run alongside `serve`.
    ProcessDue,
}

/// `tenantry stripe …` (needs `TENANTRY_STRIPE_SECRET_KEY`).
#[derive(Debug, Subcommand)]
pub enum StripeAction {
    /// Create or update a Stripe Product per active product and a Price per
    /// active paid plan (archiving a plan's old Price when its price
    /// changed). Idempotent: a second run changes nothing.
    SyncCatalog,
    /// Process recent Stripe events (the last 3 days) that no webhook
    /// delivered, through the webhook's idempotent path.
    Reconcile,
}

/// `tenantry admin …`
#[derive(Debug, Subcommand)]
pub enum AdminAction {
    /// Create an admin user (e.g. the first one). The password is read from
    /// standard input, never from the command line.
    Create {
        /// The admin's email.
        #[arg(long)]
        email: String,
        /// Read the password from standard input (required: passwords never go on the command line).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
}

/// `tenantry migrate …`
#[derive(Debug, Subcommand)]
pub enum MigrateAction {
    /// Apply every pending migration.
    Up,
    /// Revert the last N applied migrations.
    Down {
        /// How many to revert.
        #[arg(value_parser = clap::value_parser!(u32).range(1..))]
        n: u32,
    },
    /// List every migration and whether it is applied.
    Status,
}

/// `tenantry catalog …`
#[derive(Debug, Subcommand)]
pub enum CatalogAction {
    /// Create or update products and plans from a TOML or JSON file (idempotent).
    Load {
        /// The catalog file (`.toml` or `.json`), e.g. catalog/demo.toml.
        file: PathBuf,
    },
}

/// Finds `--config FILE` / `--config=FILE` or `TENANTRY_CONFIG` before clap runs,
/// so the file can supply defaults.
fn config_path(args: &[OsString]) -> Option<PathBuf> {
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        let s = a.to_string_lossy();
        if s == "--config" {
            return it.next().map(PathBuf::from);
        }
        if let Some(v) = s.strip_prefix("--config=") {
            return Some(PathBuf::from(v));
        }
    }
    std::env::var_os("TENANTRY_CONFIG")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

impl std::fmt::Debug for Cli {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cli")
            .field("config", &self.config)
            .field("settings", &self.settings)
            .field("command", &self.command)
            .finish()
    }
}

impl Cli {
    /// Parses `args`, with the config file's values as defaults.
    ///
    /// # Errors
    /// A clap error (usage, `--help`, `--version`) or a config file error,
    /// both ready to print.
    pub fn parse_from_with_config(args: Vec<OsString>) -> Result<Self, clap::Error> {
        let mut cmd = Self::command();
        if let Some(path) = config_path(&args) {
            let pairs = read_config_file(&path)
                .map_err(|e| cmd.error(clap::error::ErrorKind::InvalidValue, e.to_string()))?;
            for (key, value) in pairs {
                if key == "config" || !cmd.get_arguments().any(|a| a.get_id() == key.as_str()) {
                    return Err(cmd.error(
                        clap::error::ErrorKind::UnknownArgument,
                        format!("config file {}: unknown setting {key:?}", path.display()),
                    ));
                }
                cmd = cmd.mut_arg(key, |a| a.default_value(value));
            }
        }
        let matches = cmd.try_get_matches_from(args)?;
        Self::from_arg_matches(&matches)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::parse_from_with_config(args.iter().map(OsString::from).collect())
    }

    #[test]
    fn the_cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_setting_has_a_variable_listed_in_help() {
        let help = Cli::command().render_long_help().to_string();
        for var in [
            "DATABASE_URL",
            "TENANTRY_LISTEN",
            "TENANTRY_LOG",
            "TENANTRY_LOG_FORMAT",
            "TENANTRY_DB_POOL_SIZE",
            "TENANTRY_DB_TIMEOUT_SECS",
            "TENANTRY_SHUTDOWN_TIMEOUT_SECS",
            "TENANTRY_HTTP_WORKERS",
            "TENANTRY_MAX_BODY_BYTES",
            "TENANTRY_CONFIG",
            "TENANTRY_DATA_DIR",
        ] {
            assert!(help.contains(var), "{var} missing from --help");
        }
        let sample =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../.env.sample"))
                .unwrap();
        for arg in Cli::command().get_arguments() {
            if let Some(env) = arg.get_env() {
                let env = env.to_string_lossy();
                assert!(sample.contains(&*env), ".env.sample lacks {env}");
            }
        }
    }

    /// The README's configuration table has a row for every variable of
    /// `.env.sample` (which has every setting's variable, checked above).
    #[test]
    fn the_readme_configuration_table_lists_every_variable() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../");
        let sample = std::fs::read_to_string(format!("{root}.env.sample")).unwrap();
        let readme = std::fs::read_to_string(format!("{root}README.md")).unwrap();
        let vars: Vec<&str> = sample
            .lines()
            .filter_map(|l| l.split_once('=').map(|(k, _)| k))
            .filter(|k| !k.starts_with('#') && !k.is_empty())
            .collect();
        assert!(vars.len() > 50, "{vars:?}");
        for var in &vars {
            assert!(
                readme.contains(&format!("| `{var}` |")),
                "README.md's configuration table lacks {var}"
            );
        }
        // And nothing else: every row of the table is a variable.
        let rows: Vec<&str> = readme
            .lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .filter_map(|l| l.split_once("` |").map(|(name, _)| name))
            .filter(|name| {
                name.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            })
            .collect();
        assert_eq!(rows.len(), vars.len(), "one row per variable: {rows:?}");
        for row in rows {
            assert!(
                vars.contains(&row),
                "README.md's configuration table lists {row}, which is no setting"
            );
        }
    }

    /// The boolean parser takes what people type, in any case, and refuses
    /// anything else. (That every boolean setting uses it, for its variable
    /// too, is `cli::every_boolean_variable_takes_what_people_type` in the
    /// integration tests.)
    #[test]
    fn booleans_are_read_as_people_type_them() {
        use clap::builder::TypedValueParser as _;
        let cmd = Cli::command();
        let read = |value: &str| {
            crate::config::boolish().parse_ref(&cmd, None, std::ffi::OsStr::new(value))
        };
        for yes in ["1", "true", "TRUE", "yes", "Yes", "on", "ON"] {
            assert!(read(yes).unwrap(), "{yes}");
        }
        for no in ["0", "false", "False", "no", "NO", "off", "Off"] {
            assert!(!read(no).unwrap(), "{no}");
        }
        assert!(read("maybe").is_err());
        // A flag alone still means true.
        let cli = parse(&["tenantry", "--sandbox", "--hsts", "openapi"]).unwrap();
        let s = crate::config::Settings::from(cli.settings);
        assert!(s.billing.sandbox && s.auth.hsts && !s.auth.insecure_cookies);
    }

    #[test]
    fn subcommand_help_lists_the_settings_too() {
        let mut cmd = Cli::command();
        cmd.build();
        let serve = cmd.find_subcommand_mut("serve").unwrap();
        let help = serve.render_long_help().to_string();
        assert!(help.contains("TENANTRY_LISTEN") && help.contains("DATABASE_URL"));
    }

    #[test]
    fn config_file_values_are_defaults_that_flags_override() {
        let dir = std::env::temp_dir().join(format!("tenantry-cfg-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("tenantry.toml");
        std::fs::write(&file, "listen = \"0.0.0.0:9999\"\ndb_pool_size = 7\n").unwrap();
        let f = file.to_str().unwrap();
        let cli = parse(&["tenantry", "--config", f, "openapi"]).unwrap();
        let s = Settings::from(cli.settings);
        assert_eq!(s.listen.port(), 9999);
        assert_eq!(s.db_pool_size, 7);
        let cli = parse(&[
            "tenantry",
            "--config",
            f,
            "--listen",
            "127.0.0.1:1234",
            "openapi",
        ])
        .unwrap();
        assert_eq!(Settings::from(cli.settings).listen.port(), 1234);

        std::fs::write(&file, "lisen = \"x\"\n").unwrap();
        let err = parse(&["tenantry", "--config", f, "openapi"])
            .err()
            .unwrap();
        assert!(err.to_string().contains("lisen"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let s = Settings::for_tests("postgres://u:hunter2@db/x");
        let shown = format!("{s:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
