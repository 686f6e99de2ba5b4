//! Authentication and the error shapes of pve-http-server.

use crate::helpers::spawn;

#[tokio::test]
async fn no_or_wrong_token_is_401_with_an_empty_body() {
    let t = spawn().await;
    let r = t.raw("GET", "/version", &[], "").await;
    assert_eq!(r.status_line, "HTTP/1.1 401 No ticket");
    assert_eq!(r.body, "");
    let wrong = format!("PVEAPIToken={}=wrong-secret", t.sim.token_id());
    let r = t
        .raw("GET", "/version", &[("Authorization", &wrong)], "")
        .await;
    assert_eq!(r.status_line, "HTTP/1.1 401 authentication failure");
    assert_eq!(r.body, "");
    let r = t
        .raw(
            "GET",
            "/version",
            &[("Authorization", "PVEAPIToken=nobody@pve!x=y")],
            "",
        )
        .await;
    assert_eq!(r.status_line, "HTTP/1.1 401 authentication failure");
    let r = t
        .raw("GET", "/version", &[("Authorization", "Bearer abc")], "")
        .await;
    assert!(r.status_line.starts_with("HTTP/1.1 401"));
    let r = t
        .raw("GET", "/version", &[("Authorization", &t.auth())], "")
        .await;
    assert_eq!(r.status_line, "HTTP/1.1 200 OK");
    // Even unknown paths need authentication first.
    let r = t.raw("GET", "/foo", &[], "").await;
    assert!(r.status_line.starts_with("HTTP/1.1 401"));
    assert!(t.sim.requests().iter().filter(|q| q.status == 401).count() >= 5);
}

#[tokio::test]
async fn unknown_paths_are_501() {
    let t = spawn().await;
    let r = t
        .raw("GET", "/foo", &[("Authorization", &t.auth())], "")
        .await;
    assert_eq!(
        r.status_line,
        "HTTP/1.1 501 Method 'GET /foo' not implemented"
    );
    assert_eq!(
        r.body,
        r#"{"data":null,"message":"Method 'GET /foo' not implemented\n"}"#
    );
    // In the schema, but with another method.
    let r = t.form("DELETE", "/version", &[]).await;
    assert_eq!(r.status, 501);
    assert_eq!(r.message(), "Method 'DELETE /version' not implemented");
}

#[tokio::test]
async fn errors_carry_the_reason_in_the_status_line_and_message() {
    let t = spawn().await;
    let r = t
        .raw(
            "GET",
            "/nodes/pve1/lxc/999/config",
            &[("Authorization", &t.auth())],
            "",
        )
        .await;
    assert_eq!(
        r.status_line,
        "HTTP/1.1 500 Configuration file 'nodes/pve1/lxc/999.conf' does not exist"
    );
    assert_eq!(
        r.body,
        r#"{"data":null,"message":"Configuration file 'nodes/pve1/lxc/999.conf' does not exist\n"}"#
    );
    let r = t
        .raw(
            "POST",
            "/nodes/pve1/lxc",
            &[("Authorization", &t.auth())],
            "vmid=abc",
        )
        .await;
    assert_eq!(r.status_line, "HTTP/1.1 400 Parameter verification failed.");
    let r = t.get("/nodes/pve9/lxc").await;
    assert_eq!(r.status, 500);
    assert!(r.message().starts_with("hostname lookup 'pve9' failed"));
}

#[tokio::test]
async fn an_unreachable_node_answers_595_and_shows_offline() {
    let t = spawn().await;
    t.created("pve2", 300, &[]).await;
    t.sim.faults().set_node_unreachable("pve2", true);
    let r = t
        .raw(
            "GET",
            "/nodes/pve2/lxc",
            &[("Authorization", &t.auth())],
            "",
        )
        .await;
    assert_eq!(r.status_line, "HTTP/1.1 595 No route to host");
    assert_eq!(r.body, "");
    let r = t
        .form("POST", "/nodes/pve2/lxc/300/status/start", &[])
        .await;
    assert_eq!(r.status, 595);
    let nodes = t.get("/nodes").await.data();
    assert_eq!(nodes[1]["node"], "pve2");
    assert_eq!(nodes[1]["status"], "offline");
    let res = t.get("/cluster/resources").await.data();
    let res = res.as_array().unwrap();
    assert!(
        res.iter()
            .any(|r| r["id"] == "node/pve2" && r["status"] == "offline")
    );
    assert!(
        res.iter()
            .any(|r| r["id"] == "lxc/300" && r["status"] == "unknown")
    );
    // Cluster-wide calls and other nodes still work.
    assert_eq!(t.get("/nodes/pve1/lxc").await.status, 200);
    t.sim.faults().set_node_unreachable("pve2", false);
    assert_eq!(t.get("/nodes/pve2/lxc").await.status, 200);
}
