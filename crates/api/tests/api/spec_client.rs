//! A client generated from the committed spec (`openapi-python-client`,
//! from PyPI; `make tools` installs it), used as generated, drives the main
//! path against a real server: what a separate SPA or a script would do.

use std::process::Command;

use crate::helpers::spawn_app_with_catalog;

#[tokio::test]
async fn a_client_generated_from_the_spec_drives_the_main_path() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let out_dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("spec-client-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&out_dir).unwrap();
    let generated = Command::new("openapi-python-client")
        .args(["generate", "--meta", "none", "--overwrite", "--path"])
        .arg(format!("{root}/openapi/openapi.json"))
        .arg("--output-path")
        .arg(out_dir.join("tenantry_api_client"))
        .output()
        .expect("openapi-python-client must be installed: run `make tools`");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&generated.stdout),
        String::from_utf8_lossy(&generated.stderr)
    );
    assert!(generated.status.success(), "{said}");
    assert!(
        !said.to_lowercase().contains("warning"),
        "the generator warns about the spec: fix the spec, not the warning\n{said}"
    );

    let app = spawn_app_with_catalog().await;
    let base = app.url("");
    let script = format!("{root}/crates/api/tests/api/spec_client/main_path.py");
    // The client is blocking: run it off the runtime that serves the app.
    let run = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg(script)
            .arg(base)
            .env("PYTHONPATH", &out_dir)
            .output()
            .expect("python3")
    })
    .await
    .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(run.status.success(), "{said}");
    assert!(said.contains("main path: OK"), "{said}");
}
