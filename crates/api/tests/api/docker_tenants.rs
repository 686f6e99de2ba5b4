//! Tenants of a Docker product on the real engine of this machine, through
//! the API: a dedicated container with its port and environment, pause,
//! resume, migration to the shared container and back, deletion. The image
//! is built here from Debian's static busybox (no registry is reachable);
//! everything the test makes is removed when it ends, also on failure.

use std::{process::Command, time::Duration};

use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app_with};

/// Removes the test's containers, volumes and image when dropped.
struct Cleanup {
    product: String,
    image: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let label = format!("label=tenantry.product={}", self.product);
        let ids = docker(&["ps", "-aq", "--filter", &label]);
        for id in ids.split_whitespace() {
            docker(&["rm", "-f", id]);
        }
        let vols = docker(&["volume", "ls", "-q", "--filter", &label]);
        for v in vols.split_whitespace() {
            docker(&["volume", "rm", "-f", v]);
        }
        docker(&["rmi", "-f", &self.image]);
    }
}

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("docker CLI");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Builds `image`: busybox serving `/www` over HTTP on 8080, whose page
/// names the tenant and database it was given.
fn build_image(image: &str) {
    let dir = std::env::temp_dir().join(format!("tenantry-img-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy("/bin/busybox", dir.join("busybox"))
        .expect("Debian's busybox-static at /bin/busybox");
    std::fs::write(
        dir.join("start.sh"),
        "#!/bin/busybox sh\nbb=/bin/busybox\n$bb mkdir -p /www\necho \"tenant=$TENANT_SLUG db=$APP_DB\" > /www/index.html\nexec $bb httpd -f -p 8080 -h /www\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM scratch\nCOPY busybox /bin/busybox\nCOPY start.sh /start.sh\nENTRYPOINT [\"/bin/busybox\", \"sh\", \"/start.sh\"]\n",
    )
    .unwrap();
    // No build cache: other tests build the same layers and delete their
    // images when they end, which would pull cached parents from under us.
    let status = Command::new("docker")
        .args(["build", "-q", "--no-cache", "-t", image])
        .arg(&dir)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(status.success(), "docker build {image}");
}

async fn wait<F: Fn(&Value) -> bool>(app: &TestApp, path: &str, token: &str, done: F) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let v: Value = app.get_as(path, token).await.json().await.unwrap();
        if done(&v) {
            return v;
        }
        assert!(v["status"] != "failed", "{path} failed: {v}");
        assert!(
            tokio::time::Instant::now() < deadline,
            "{path} never got there: {v}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn running(container: &str) -> Option<bool> {
    let out = docker(&["inspect", "-f", "{{.State.Running}}", container]);
    match out.trim() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

#[tokio::test]
async fn a_docker_tenant_runs_pauses_resumes_migrates_and_is_deleted_on_the_real_engine() {
    let suffix = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let product = format!("app-{suffix}");
    let image = format!("tenantry-test-app:{suffix}");
    let _cleanup = Cleanup {
        product: product.clone(),
        image: image.clone(),
    };
    build_image(&image);
    let app = spawn_app_with(|s| s.jobs.workers = 2).await;
    let token = app.admin().await.access_token;
    // A port range unlikely to be taken on this machine, per test run.
    let base = 20000 + (u16::from_str_radix(&suffix[..3], 16).unwrap() % 400) * 10;
    let res = app
        .post_as(
            "/v1/products",
            &token,
            json!({
                "slug": product, "name": "Test app", "driver": "docker", "image": image,
                "internal_port": 8080,
                "env": {"APP_DB": "{{db_name}}", "APP_URL": "{{public_url}}", "MODE": "serve"},
                "volumes": {"data": "/data"},
                "shared": {"max_tenants": 10, "cpu_cores": 1, "memory_mib": 256, "storage_gib": 1},
                "dedicated_ports": {"start": base, "end": base + 9},
                "plans": [
                    {"code": "small", "name": "Small", "tier_rank": 1, "price": "5.00", "currency": "USD", "interval": "month", "deployment": "shared", "cpu_cores": 1, "memory_mib": 256, "storage_gib": 1, "backup_schedule": "weekly"},
                    {"code": "big", "name": "Big", "tier_rank": 2, "price": "20.00", "currency": "USD", "interval": "month", "deployment": "dedicated", "cpu_cores": 1, "memory_mib": 256, "storage_gib": 1, "backup_schedule": "daily"}
                ]
            }),
        )
        .await;
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    let res = app
        .post_as(
            "/v1/nodes",
            &token,
            json!({"kind": "docker", "name": format!("docker-{suffix}"), "api_url": "unix:///var/run/docker.sock",
                   "capacity": {"cpu_cores": 4, "memory_mib": 8192, "storage_gib": 100, "max_instances": 20}}),
        )
        .await;
    assert_eq!(res.status(), 201);

    let slug = format!("acme-{suffix}");
    let created: Value = app
        .post_as(
            "/v1/tenants",
            &token,
            json!({"company_name": "Acme", "slug": slug, "product": product, "plan": "big",
                   "owner_email": format!("o@{slug}.test"), "skip_payment": true}),
        )
        .await
        .json()
        .await
        .unwrap();
    let id = created["tenant"]["id"].as_str().unwrap().to_owned();
    let tenant_path = format!("/v1/tenants/{id}");
    wait(&app, &tenant_path, &token, |t| t["status"] == "active").await;
    let deps: Value = app
        .get_as(&format!("{tenant_path}/deployments"), &token)
        .await
        .json()
        .await
        .unwrap();
    let d = &deps[0];
    assert_eq!(d["kind"], "dedicated");
    let port = d["host_port"].as_i64().unwrap();
    assert!((i64::from(base)..=i64::from(base) + 9).contains(&port));
    let container = d["container_id"].as_str().unwrap().to_owned();
    let instance = d["instance_id"].as_str().unwrap().to_owned();
    // Labelled, with the rendered environment, answering on its port.
    let labels = docker(&["inspect", "-f", "{{json .Config.Labels}}", &container]);
    let labels: Value = serde_json::from_str(labels.trim()).unwrap();
    assert_eq!(labels["tenantry.instance"], instance.as_str());
    assert_eq!(labels["tenantry.tenant"], slug.as_str());
    assert_eq!(labels["tenantry.product"], product.as_str());
    let page = reqwest::get(format!("http://127.0.0.1:{port}/"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let db = d["database"].as_str().unwrap();
    assert_eq!(page.trim(), format!("tenant={slug} db={db}"));

    // Pause and resume stop and start it.
    let pause: Value = app
        .post_as(&format!("{tenant_path}/pause"), &token, json!({}))
        .await
        .json()
        .await
        .unwrap();
    wait(
        &app,
        &format!("/v1/jobs/{}", pause["job"]["id"].as_str().unwrap()),
        &token,
        |j| j["status"] == "succeeded",
    )
    .await;
    assert_eq!(running(&container), Some(false));
    let resume: Value = app
        .post_as(&format!("{tenant_path}/resume"), &token, json!({}))
        .await
        .json()
        .await
        .unwrap();
    wait(
        &app,
        &format!("/v1/jobs/{}", resume["job"]["id"].as_str().unwrap()),
        &token,
        |j| j["status"] == "succeeded",
    )
    .await;
    assert_eq!(running(&container), Some(true));

    // Down to the shared plan: the shared container is created, the dedicated one removed.
    let res = app
        .post_as(
            &format!("{tenant_path}/plan-change"),
            &token,
            json!({"plan": "small", "immediate": true, "reason": "test"}),
        )
        .await;
    assert!(res.status().is_success());
    let deps = wait(&app, &format!("{tenant_path}/deployments"), &token, |v| {
        v[0]["kind"] == "shared" && v[0]["status"] == "active"
    })
    .await;
    wait(&app, &tenant_path, &token, |t| t["status"] == "active").await;
    assert_eq!(running(&container), None, "the dedicated container is gone");
    let volumes = |instance: &str| {
        docker(&[
            "volume",
            "ls",
            "-q",
            "--filter",
            &format!("label=tenantry.instance={instance}"),
        ])
    };
    assert!(
        !volumes(&instance).trim().is_empty(),
        "its volume is kept until the tenant is deleted"
    );
    let shared = deps[0]["container_id"].as_str().unwrap().to_owned();
    assert_eq!(running(&shared), Some(true));
    let shared_labels: Value =
        serde_json::from_str(docker(&["inspect", "-f", "{{json .Config.Labels}}", &shared]).trim())
            .unwrap();
    assert_eq!(shared_labels["tenantry.tenant"], "shared");

    // Deleting the tenant drops its database; the shared container keeps serving others.
    let res = app.delete_as(&tenant_path, &token).await;
    assert_eq!(res.status(), 202);
    wait(&app, &tenant_path, &token, |t| t["status"] == "deleted").await;
    assert_eq!(running(&shared), Some(true));
    let left = docker(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=tenantry.tenant={slug}"),
    ]);
    assert!(
        left.trim().is_empty(),
        "no container of the tenant left: {left}"
    );
}
