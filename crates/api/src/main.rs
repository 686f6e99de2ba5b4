//! The `tenantry` binary: see `tenantry --help`.

use std::process::ExitCode;

use tenantry_api::{
    Application,
    cli::{AdminAction, BillingAction, CatalogAction, Cli, Command, MigrateAction},
    config::Settings,
    error::error_chain,
    telemetry,
};
use tenantry_store::migrations;

fn main() -> ExitCode {
    let cli = match Cli::parse_from_with_config(std::env::args_os().collect()) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let settings = Settings::from(cli.settings);
    telemetry::init(&settings.log, settings.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tenantry: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command, settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %error_chain(e.as_ref()), "tenantry failed");
            eprintln!("tenantry: {}", error_chain(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    match command {
        Command::Serve => serve(settings).await,
        Command::Worker => tenantry_api::workers::run_standalone(settings).await,
        Command::Migrate { action } => migrate(action, &settings).await,
        Command::Openapi => {
            print!("{}", tenantry_api::openapi::to_pretty_json()?);
            Ok(())
        }
        Command::Stripe { action } => {
            let line = tenantry_api::stripe_cli::run(&settings, action).await?;
            println!("{line}");
            Ok(())
        }
        Command::Billing {
            action: BillingAction::ProcessDue,
        } => {
            let started = std::time::Instant::now();
            let report = tenantry_api::billing_processor::run_once(&settings).await?;
            println!(
                "billing: {} change(s) applied, {} upgrade(s) expired, {} renewal(s) paid, {} declined, {} awaiting the customer, {} recovered, {} suspended, {} terminated, {} canceled ended in {:.2} s",
                report.applied_changes,
                report.expired_upgrades,
                report.renewed,
                report.declined,
                report.awaiting_customer,
                report.recovered,
                report.suspended,
                report.terminated,
                report.ended,
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Command::Admin {
            action:
                AdminAction::Create {
                    email,
                    password_stdin: _,
                },
        } => {
            let mut password = String::new();
            std::io::stdin().read_line(&mut password)?;
            let password =
                secrecy::SecretString::from(password.trim_end_matches(['\r', '\n']).to_owned());
            let user = tenantry_api::admin::create_admin(&settings, &email, &password).await?;
            println!("created admin {} ({})", user.email, user.id);
            Ok(())
        }
        Command::Catalog {
            action: CatalogAction::Load { file },
        } => {
            let report = tenantry_api::catalog_file::load(&settings, &file).await?;
            println!(
                "catalog {}: {} product(s) created, {} updated; {} plan(s) created, {} updated; {} unchanged",
                file.display(),
                report.products_created,
                report.products_updated,
                report.plans_created,
                report.plans_updated,
                report.unchanged
            );
            Ok(())
        }
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let url = settings.require_database_url()?;
    let applied = migrations::run_pending(url).await?;
    for name in &applied {
        tracing::info!(migration = %name, "applied migration");
    }
    let app = Application::build(&settings)?;
    tracing::info!(
        listen = %settings.listen,
        port = app.port(),
        docs = %format!("http://{}:{}/docs/", settings.listen.ip(), app.port()),
        "serving the Tenantry API"
    );
    app.run_until_stopped().await?;
    tracing::info!("stopped");
    Ok(())
}

async fn migrate(action: MigrateAction, settings: &Settings) -> anyhow::Result<()> {
    let url = settings.require_database_url()?;
    match action {
        MigrateAction::Up => {
            let applied = migrations::run_pending(url).await?;
            if applied.is_empty() {
                println!("no pending migration");
            }
            for name in applied {
                println!("applied {name}");
            }
        }
        MigrateAction::Down { n } => {
            let reverted = migrations::revert(url, n as usize).await?;
            if reverted.is_empty() {
                println!("no applied migration to revert");
            }
            for name in reverted {
                println!("reverted {name}");
            }
        }
        MigrateAction::Status => {
            for m in migrations::status(url).await? {
                println!("[{}] {}", if m.applied { "X" } else { " " }, m.name);
            }
        }
    }
    Ok(())
}
