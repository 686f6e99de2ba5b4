//! Custom domains verified against a real DNS server: Debian's `dnsmasq`,
//! started by each test on a free loopback port (no daemon, no upstream,
//! no hosts file: it answers the TXT records the test gives it, and
//! NXDOMAIN for every other name), and pointed at through
//! `TENANTRY_DNS_RESOLVER`.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use tenantry_domain::Role;

use crate::helpers::{TestApp, assert_problem, spawn_app_with};

/// A dnsmasq serving `records` (TXT name → value), killed when dropped.
struct Dns {
    child: Option<Child>,
    port: u16,
}

impl Dns {
    fn start(records: &[(&str, &str)]) -> Self {
        let mut dns = Self {
            child: None,
            port: free_udp_and_tcp_port(),
        };
        dns.serve(records);
        dns
    }

    /// (Re)starts the server on the same port with `records`.
    fn serve(&mut self, records: &[(&str, &str)]) {
        self.kill();
        let binary = if std::path::Path::new("/usr/sbin/dnsmasq").exists() {
            "/usr/sbin/dnsmasq"
        } else {
            "dnsmasq"
        };
        let mut cmd = Command::new(binary);
        cmd.args([
            "--no-daemon",
            "--keep-in-foreground",
            "--listen-address=127.0.0.1",
            "--bind-interfaces",
            "--no-resolv",
            "--no-hosts",
            "--conf-file=/dev/null",
            "--pid-file=",
            // Authoritative for every name: NXDOMAIN rather than REFUSED
            // for the names it has no record of.
            "--local=/#/",
        ])
        .arg(format!("--port={}", self.port));
        for (name, value) in records {
            cmd.arg(format!("--txt-record={name},{value}"));
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("dnsmasq (Debian package `dnsmasq-base`) must be installed: see .ci/run");
        // Up when it answers a query (probing by binding the port could
        // take it from under dnsmasq).
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut err);
                }
                panic!("dnsmasq exited ({status}): {err}");
            }
            if answers(self.port) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "dnsmasq did not answer on port {}",
                self.port
            );
        }
        self.child = Some(child);
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether a DNS server on loopback `port` answers a TXT query for
/// `probe.test` (any answer will do) within 100 ms.
fn answers(port: u16) -> bool {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    // Header: id 0x7e57, RD, one question; then probe.test TXT IN.
    let mut query = vec![0x7e, 0x57, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in ["probe", "test"] {
        query.push(u8::try_from(label.len()).unwrap());
        query.extend_from_slice(label.as_bytes());
    }
    query.extend_from_slice(&[0, 0, 16, 0, 1]);
    if socket.send_to(&query, ("127.0.0.1", port)).is_err() {
        return false;
    }
    let mut buf = [0_u8; 512];
    matches!(socket.recv_from(&mut buf), Ok((n, _)) if n >= 12 && buf[..2] == [0x7e, 0x57])
}

/// A loopback port free for UDP and TCP both (dnsmasq binds both).
fn free_udp_and_tcp_port() -> u16 {
    for _ in 0..50 {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no loopback port free for both UDP and TCP");
}

/// The app asking `dns`, with `f` applied to its settings.
async fn app_with_dns(dns: &Dns, f: impl FnOnce(&mut tenantry_api::config::Settings)) -> TestApp {
    let addr = dns.addr();
    spawn_app_with(|s| {
        s.domains.resolver = Some(addr);
        f(s);
    })
    .await
}

/// An active tenant `slug` and its owner's access token.
async fn tenant_with_owner(app: &TestApp, slug: &str) -> (uuid::Uuid, String) {
    let id = app.tenant(slug).await;
    let owner = app
        .user(&format!("owner@{slug}.test"), Role::TenantOwner, Some(id))
        .await;
    (id, owner.access_token)
}

async fn add(
    app: &TestApp,
    tenant: impl std::fmt::Display,
    token: &str,
    host: &str,
) -> reqwest::Response {
    app.post_as(
        &format!("/v1/tenants/{tenant}/domains"),
        token,
        json!({"hostname": host}),
    )
    .await
}

async fn added(app: &TestApp, tenant: impl std::fmt::Display, token: &str, host: &str) -> Value {
    let res = add(app, tenant, token, host).await;
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    res.json().await.unwrap()
}

async fn verify(
    app: &TestApp,
    tenant: impl std::fmt::Display,
    token: &str,
    domain: &Value,
) -> Value {
    let res = app
        .post_as(
            &format!(
                "/v1/tenants/{tenant}/domains/{}/verify",
                domain["id"].as_str().unwrap()
            ),
            token,
            json!({}),
        )
        .await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    res.json().await.unwrap()
}

async fn tls_allowed(app: &TestApp, host: &str) -> u16 {
    app.get(&format!("/v1/routing/tls-allowed?domain={host}"))
        .await
        .status()
        .as_u16()
}

/// The hosts of `slug`'s route in `GET /v1/routing` (empty: no route).
async fn route_hosts(app: &TestApp, admin: &str, slug: &str) -> Vec<String> {
    let table: Value = app.get_as("/v1/routing", admin).await.json().await.unwrap();
    table["routes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["tenant"] == slug)
        .flat_map(|r| r["hosts"].as_array().unwrap().clone())
        .map(|h| h.as_str().unwrap().to_owned())
        .collect()
}

async fn actions(app: &TestApp, tenant: uuid::Uuid, admin: &str) -> Vec<(String, String)> {
    let page: Value = app
        .get_as(&format!("/v1/tenants/{tenant}/activity?limit=200"), admin)
        .await
        .json()
        .await
        .unwrap();
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["action"].as_str().unwrap().to_owned(),
                a["actor"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn delete(app: &TestApp, path: &str, token: &str) -> reqwest::RequestBuilder {
    app.request(reqwest::Method::DELETE, path, token)
}

#[tokio::test]
async fn domains_a_txt_record_verifies_a_domain_which_is_then_routed_until_removed() {
    let mut dns = Dns::start(&[]);
    let app = app_with_dns(&dns, |_| {}).await;
    let admin = app.admin().await.access_token;
    let (tenant, owner) = tenant_with_owner(&app, "acme").await;

    // Added: pending, with what to publish.
    let d = added(&app, tenant, &owner, "Shop.Example.COM.").await;
    assert_eq!(d["hostname"], "shop.example.com");
    assert_eq!(d["status"], "pending");
    assert_eq!(d["txt_name"], "_tenantry-challenge.shop.example.com");
    assert_eq!(d["cname_target"], "acme.tenantry.test");
    let token = d["txt_value"].as_str().unwrap().to_owned();
    assert_eq!(token.len(), 32, "{token}");
    assert!(token.chars().all(|c| c.is_ascii_hexdigit()), "{token}");
    assert!(d["verified_at"].is_null() && d["last_error"].is_null());
    let id = d["id"].as_str().unwrap().to_owned();
    // A domain.verify job was queued with it, for the tenant.
    let jobs = app
        .sql()
        .await
        .query(
            "SELECT tenant_id FROM jobs WHERE kind = 'domain.verify' AND payload->>'domain_id' = $1",
            &[&id],
        )
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].get::<_, Option<uuid::Uuid>>(0), Some(tenant));
    let listed: Value = app
        .get_as(&format!("/v1/tenants/{tenant}/domains"), &owner)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["id"], id.as_str());

    // Checked before the record exists: still pending, and says why.
    let v = verify(&app, tenant, &owner, &d).await;
    assert_eq!(v["status"], "pending", "{v}");
    let why = v["last_error"].as_str().unwrap();
    assert!(
        why.contains("NXDOMAIN") && why.contains("_tenantry-challenge.shop.example.com"),
        "{why}"
    );
    assert!(v["last_checked_at"].is_string());
    assert_eq!(tls_allowed(&app, "shop.example.com").await, 404);
    assert!(
        !route_hosts(&app, &admin, "acme")
            .await
            .contains(&"shop.example.com".to_owned())
    );

    // A record with another value: found, but no match.
    dns.serve(&[(
        "_tenantry-challenge.shop.example.com",
        "someone-elses-token",
    )]);
    let v = verify(&app, tenant, &owner, &d).await;
    assert_eq!(v["status"], "pending", "{v}");
    let why = v["last_error"].as_str().unwrap();
    assert!(
        why.contains("no value matches") && why.contains("someone-elses-token"),
        "{why}"
    );

    // The record published (beside another TXT value): verified and routed.
    dns.serve(&[
        ("_tenantry-challenge.shop.example.com", "v=spf1 -all"),
        ("_tenantry-challenge.shop.example.com", &token),
    ]);
    let v = verify(&app, tenant, &owner, &d).await;
    assert_eq!(v["status"], "verified", "{v}");
    assert!(
        v["verified_at"].is_string() && v["last_error"].is_null(),
        "{v}"
    );
    assert_eq!(tls_allowed(&app, "shop.example.com").await, 200);
    assert_eq!(tls_allowed(&app, "SHOP.example.com.").await, 200);
    assert_eq!(
        route_hosts(&app, &admin, "acme").await,
        ["acme.tenantry.test", "shop.example.com"]
    );
    // Verified stays verified, whatever DNS says later.
    dns.serve(&[]);
    let v = verify(&app, tenant, &owner, &d).await;
    assert_eq!(v["status"], "verified", "{v}");

    // Removed: unrouted at once, and the name is free again.
    let res = delete(&app, &format!("/v1/tenants/{tenant}/domains/{id}"), &owner)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(tls_allowed(&app, "shop.example.com").await, 404);
    assert_eq!(
        route_hosts(&app, &admin, "acme").await,
        ["acme.tenantry.test"]
    );
    let listed: Value = app
        .get_as(&format!("/v1/tenants/{tenant}/domains"), &owner)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed, json!([]));
    let res = delete(&app, &format!("/v1/tenants/{tenant}/domains/{id}"), &owner)
        .send()
        .await
        .unwrap();
    assert_problem(res, 404).await;

    let done = actions(&app, tenant, &admin).await;
    for (action, actor) in [
        ("domain.added", "owner@acme.test"),
        ("domain.verified", "owner@acme.test"),
        ("domain.removed", "owner@acme.test"),
    ] {
        assert!(
            done.contains(&(action.to_owned(), actor.to_owned())),
            "{action} by {actor} missing: {done:?}"
        );
    }
    assert_eq!(
        done.iter().filter(|(a, _)| a == "domain.verified").count(),
        1,
        "one row for the one move to verified: {done:?}"
    );
}

#[tokio::test]
async fn domains_a_unicode_host_name_is_stored_and_looked_up_as_its_a_labels() {
    let mut dns = Dns::start(&[]);
    let app = app_with_dns(&dns, |_| {}).await;
    let (tenant, owner) = tenant_with_owner(&app, "buecher").await;
    let d = added(&app, "buecher", &owner, "Bücher.Example").await;
    assert_eq!(d["hostname"], "xn--bcher-kva.example");
    assert_eq!(d["txt_name"], "_tenantry-challenge.xn--bcher-kva.example");
    // The same name in either form is the same claim.
    let res = add(&app, tenant, &owner, "xn--bcher-kva.example").await;
    assert_problem(res, 409).await;
    dns.serve(&[(
        "_tenantry-challenge.xn--bcher-kva.example",
        d["txt_value"].as_str().unwrap(),
    )]);
    let v = verify(&app, tenant, &owner, &d).await;
    assert_eq!(v["status"], "verified", "{v}");
    assert_eq!(tls_allowed(&app, "xn--bcher-kva.example").await, 200);
}

#[tokio::test]
async fn domains_host_names_that_are_not_a_tenants_to_claim_are_422_naming_the_field() {
    let dns = Dns::start(&[]);
    let app = app_with_dns(&dns, |_| {}).await;
    let (tenant, owner) = tenant_with_owner(&app, "acme").await;
    let label = "a".repeat(63);
    let too_long = format!("{label}.{label}.{label}.{label}.com");
    for (host, says) in [
        ("*.example.com", "wildcard"),
        ("shop.*.example.com", "wildcard"),
        ("acme.tenantry.test", "under the platform's domain"),
        ("deep.acme.tenantry.test", "under the platform's domain"),
        ("tenantry.test", "platform's domain"),
        ("192.0.2.10", "IP address"),
        ("2001:db8::1", "IP address"),
        ("[2001:db8::1]", "IP address"),
        (too_long.as_str(), "253"),
        ("shop..example.com", "label"),
        ("-shop.example.com", "hyphen"),
        ("sh_op.example.com", "letters, digits and hyphens"),
        (&format!("{}.example.com", "a".repeat(64)), "63"),
        ("localhost", "localhost"),
        ("app.localhost", "localhost"),
        ("intranet", "two labels"),
        ("https://shop.example.com/", "bare host name"),
        ("shop.example.com:8443", "bare host name"),
        ("", "empty"),
    ] {
        let res = add(&app, tenant, &owner, host).await;
        let body = assert_problem(res, 422).await;
        assert_eq!(
            body["type"],
            "https://tenantry.dev/problems/validation-failed"
        );
        assert_eq!(body["errors"][0]["field"], "hostname", "{host}: {body}");
        let message = body["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains(says), "{host}: {message}");
    }
    // The body's shape is checked too, naming the field.
    let res = app
        .post_as(&format!("/v1/tenants/{tenant}/domains"), &owner, json!({}))
        .await;
    let body = assert_problem(res, 422).await;
    assert!(body.to_string().contains("hostname"), "{body}");
    let listed: Value = app
        .get_as(&format!("/v1/tenants/{tenant}/domains"), &owner)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed, json!([]), "nothing was added");
}

#[tokio::test]
async fn domains_a_host_name_belongs_to_one_tenant_at_most() {
    let dns = Dns::start(&[]);
    let app = app_with_dns(&dns, |_| {}).await;
    let (a, owner_a) = tenant_with_owner(&app, "tenant-a").await;
    let (b, owner_b) = tenant_with_owner(&app, "tenant-b").await;
    let d = added(&app, a, &owner_a, "shop.example.com").await;
    for (tenant, token, host) in [
        (b, &owner_b, "shop.example.com"),
        (b, &owner_b, "SHOP.example.com."),
        (a, &owner_a, "shop.example.com"),
    ] {
        let body = assert_problem(add(&app, tenant, token, host).await, 409).await;
        assert_eq!(body["type"], "https://tenantry.dev/problems/hostname-taken");
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .contains("shop.example.com is already claimed"),
            "{body}"
        );
    }
    // Given up by A, B may claim it (with a token of its own).
    let res = delete(
        &app,
        &format!("/v1/tenants/{a}/domains/{}", d["id"].as_str().unwrap()),
        &owner_a,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(res.status(), 204);
    let again = added(&app, b, &owner_b, "shop.example.com").await;
    assert_ne!(again["txt_value"], d["txt_value"]);
}

#[tokio::test]
async fn domains_only_the_owner_or_staff_change_them_and_other_tenants_see_nothing() {
    let dns = Dns::start(&[]);
    let app = app_with_dns(&dns, |_| {}).await;
    let admin = app.admin().await.access_token;
    let (a, owner_a) = tenant_with_owner(&app, "tenant-a").await;
    let (_b, owner_b) = tenant_with_owner(&app, "tenant-b").await;
    let member = app
        .user("member@tenant-a.test", Role::TenantMember, Some(a))
        .await
        .access_token;
    let d = added(&app, a, &owner_a, "shop.example.com").await;
    let id = d["id"].as_str().unwrap();

    // A member reads, and changes nothing.
    let listed: Value = app
        .get_as(&format!("/v1/tenants/{a}/domains"), &member)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed[0]["hostname"], "shop.example.com");
    assert_problem(add(&app, a, &member, "other.example.com").await, 403).await;
    let res = app
        .post_as(
            &format!("/v1/tenants/{a}/domains/{id}/verify"),
            &member,
            json!({}),
        )
        .await;
    assert_problem(res, 403).await;
    let res = delete(&app, &format!("/v1/tenants/{a}/domains/{id}"), &member)
        .send()
        .await
        .unwrap();
    assert_problem(res, 403).await;

    // Another tenant's owner finds neither the tenant nor the domain.
    let res = app
        .get_as(&format!("/v1/tenants/{a}/domains"), &owner_b)
        .await;
    assert_problem(res, 404).await;
    assert_problem(add(&app, a, &owner_b, "other.example.com").await, 404).await;
    for path in [
        format!("/v1/tenants/{a}/domains/{id}"),
        format!("/v1/tenants/tenant-b/domains/{id}"),
    ] {
        let res = delete(&app, &path, &owner_b).send().await.unwrap();
        let body = assert_problem(res, 404).await;
        assert!(!body.to_string().contains("shop.example.com"), "{body}");
        let res = app
            .post_as(&format!("{path}/verify"), &owner_b, json!({}))
            .await;
        assert_problem(res, 404).await;
    }
    // Still there.
    let listed: Value = app
        .get_as(&format!("/v1/tenants/{a}/domains"), &owner_a)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);

    // Staff manage any tenant's domains; the activity row is the tenant's.
    let s = added(&app, "tenant-a", &admin, "staff.example.com").await;
    assert_eq!(s["cname_target"], "tenant-a.tenantry.test");
    assert!(
        actions(&app, a, &admin)
            .await
            .contains(&("domain.added".to_owned(), "admin@example.test".to_owned()))
    );
}

#[tokio::test]
async fn domains_a_tenant_holds_at_most_twenty() {
    let dns = Dns::start(&[]);
    let app = app_with_dns(&dns, |_| {}).await;
    let (a, owner) = tenant_with_owner(&app, "acme").await;
    for i in 0..20 {
        added(&app, a, &owner, &format!("shop{i}.example.com")).await;
    }
    let body = assert_problem(add(&app, a, &owner, "one-more.example.com").await, 409).await;
    assert_eq!(
        body["type"],
        "https://tenantry.dev/problems/domain-limit-reached"
    );
    assert!(body["detail"].as_str().unwrap().contains("20"), "{body}");
}

#[tokio::test]
async fn domains_the_queued_job_and_the_re_check_ticker_verify_a_pending_domain() {
    let mut dns = Dns::start(&[]);
    let app = app_with_dns(&dns, |s| {
        s.jobs.workers = 1;
        s.domains.check_every = Duration::from_secs(1);
    })
    .await;
    let admin = app.admin().await.access_token;
    let (tenant, owner) = tenant_with_owner(&app, "acme").await;
    let d = added(&app, tenant, &owner, "shop.example.com").await;
    let path = format!("/v1/tenants/{tenant}/domains");
    let until = |done: fn(&Value) -> bool| {
        let (app, path, owner) = (&app, &path, &owner);
        async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            loop {
                let listed: Value = app.get_as(path, owner).await.json().await.unwrap();
                if done(&listed[0]) {
                    return listed[0].clone();
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the domain never got there: {listed}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    // The job queued with the domain looked, and found nothing.
    let v = until(|d| d["last_error"].is_string()).await;
    assert_eq!(v["status"], "pending");
    assert!(
        v["last_error"].as_str().unwrap().contains("NXDOMAIN"),
        "{v}"
    );
    // Published later: the ticker's next job finds it.
    dns.serve(&[(
        "_tenantry-challenge.shop.example.com",
        d["txt_value"].as_str().unwrap(),
    )]);
    let v = until(|d| d["status"] == "verified").await;
    assert!(v["last_error"].is_null(), "{v}");
    assert_eq!(tls_allowed(&app, "shop.example.com").await, 200);
    assert!(
        actions(&app, tenant, &admin)
            .await
            .contains(&("domain.verified".to_owned(), "domain-check".to_owned()))
    );
}
