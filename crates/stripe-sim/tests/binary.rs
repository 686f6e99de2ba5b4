#![expect(clippy::unwrap_used, reason = "a test fails loudly")]

//! The `stripe-sim` binary as `make run` and `make demo` use it: a customer
//! pays at the checkout page's form, the events are delivered signed with
//! the configured secret, listed under `/_sim/events`, and one is redelivered
//! identically (a duplicate delivery) on request; a declined card and a
//! clock moved three months fail three renewals, delivered in order.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpListener,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

const SECRET: &str = "whsec_binary_test";

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A webhook endpoint that answers 200 and hands over each (signature, body).
fn receiver() -> (String, mpsc::Receiver<(String, String)>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let (mut signature, mut length) = (String::new(), 0usize);
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("stripe-signature:") {
                    signature = line[line.len() - v.len()..].trim().to_owned();
                }
                if let Some(v) = lower.strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            // One request per connection: say so, or the client reuses it (and loses the next event).
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            let _ = tx.send((signature, String::from_utf8_lossy(&body).into_owned()));
        }
    });
    (url, rx)
}

fn verify(signature: &str, body: &str) {
    let t = signature
        .split(',')
        .find_map(|p| p.strip_prefix("t="))
        .unwrap();
    let v1 = signature
        .split(',')
        .find_map(|p| p.strip_prefix("v1="))
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    assert_eq!(
        hex::encode(mac.finalize().into_bytes()),
        v1,
        "signed with the secret"
    );
}

#[tokio::test]
async fn a_paid_checkout_is_delivered_signed_listed_and_redelivered() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let (hook, deliveries) = receiver();
    let _sim = Kill(
        Command::new(env!("CARGO_BIN_EXE_stripe-sim"))
            .env("STRIPE_SIM_LISTEN", format!("127.0.0.1:{port}"))
            .env("STRIPE_SIM_WEBHOOK_URL", &hook)
            .env("STRIPE_SIM_WEBHOOK_SECRET", SECRET)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let session: Value = loop {
        if let Ok(res) = http
            .post(format!("{base}/v1/checkout/sessions"))
            .form(&[
                ("mode", "payment"),
                ("customer", "cus_x"),
                ("line_items[0][quantity]", "1"),
                ("line_items[0][price_data][currency]", "usd"),
                ("line_items[0][price_data][unit_amount]", "1234"),
            ])
            .send()
            .await
        {
            break res.json().await.unwrap();
        }
        assert!(Instant::now() < deadline, "stripe-sim never listened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(session["amount_total"], 1234);

    // The customer opens the checkout page and presses its button.
    let page = http
        .get(session["url"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let action = page
        .split("action=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap();
    let res = http.post(format!("{base}{action}")).send().await.unwrap();
    assert_eq!(res.status(), 200);

    let (signature, body) = deliveries.recv_timeout(Duration::from_secs(10)).unwrap();
    verify(&signature, &body);
    let event: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(event["type"], "checkout.session.completed");
    assert_eq!(event["data"]["object"]["payment_status"], "paid");

    let events: Vec<Value> = http
        .get(format!("{base}/_sim/events"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["id"], event["id"]);

    let id = event["id"].as_str().unwrap();
    let statuses: Vec<u16> = http
        .post(format!("{base}/_sim/events/{id}/redeliver"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(statuses, vec![200]);
    let (signature, again) = deliveries.recv_timeout(Duration::from_secs(10)).unwrap();
    verify(&signature, &again);
    assert_eq!(again, body, "the same event, byte for byte");

    let missing = http
        .post(format!("{base}/_sim/events/evt_nope/redeliver"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}

/// The binary on a free port, delivering to `hook`; its base URL once it answers.
async fn spawn_sim(hook: &str) -> (Kill, String) {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let child = Kill(
        Command::new(env!("CARGO_BIN_EXE_stripe-sim"))
            .env("STRIPE_SIM_LISTEN", format!("127.0.0.1:{port}"))
            .env("STRIPE_SIM_WEBHOOK_URL", hook)
            .env("STRIPE_SIM_WEBHOOK_SECRET", SECRET)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while reqwest::get(format!("{base}/_sim/events")).await.is_err() {
        assert!(Instant::now() < deadline, "stripe-sim never listened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (child, base)
}

async fn post_form(http: &reqwest::Client, url: String, form: &[(&str, &str)]) -> Value {
    let res = http.post(url).form(form).send().await.unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

#[tokio::test]
async fn a_declined_card_and_a_three_month_clock_move_fail_three_renewals_delivered_in_order() {
    let (hook, deliveries) = receiver();
    let (_sim, base) = spawn_sim(&hook).await;
    let http = reqwest::Client::new();
    let customer = post_form(
        &http,
        format!("{base}/v1/customers"),
        &[("email", "a@example.com")],
    )
    .await;
    let cus = customer["id"].as_str().unwrap();
    let product = post_form(&http, format!("{base}/v1/products"), &[("name", "Odoo")]).await;
    let price = post_form(
        &http,
        format!("{base}/v1/prices"),
        &[
            ("product", product["id"].as_str().unwrap()),
            ("currency", "usd"),
            ("unit_amount", "2900"),
            ("recurring[interval]", "month"),
        ],
    )
    .await;
    let session = post_form(
        &http,
        format!("{base}/v1/checkout/sessions"),
        &[
            ("mode", "subscription"),
            ("customer", cus),
            ("line_items[0][price]", price["id"].as_str().unwrap()),
        ],
    )
    .await;
    let id = session["id"].as_str().unwrap();
    let paid: Vec<Value> = http
        .post(format!("{base}/_sim/checkout/{id}/complete"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(paid.len(), 2);
    for _ in 0..2 {
        deliveries.recv_timeout(Duration::from_secs(10)).unwrap();
    }

    let card: Value = http
        .post(format!("{base}/_sim/customers/{cus}/card"))
        .json(&serde_json::json!({"declined": true}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(card["declined"], true);
    assert_eq!(card["requires_action"], false);

    // Any three consecutive months last 92 days at most, four at least 120.
    let moved: Value = http
        .post(format!("{base}/_sim/clock"))
        .json(&serde_json::json!({"advance_seconds": 92 * 86_400}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(moved["offset_seconds"], 92 * 86_400);
    let events = moved["events"].as_array().unwrap();
    assert_eq!(events.len(), 3, "{moved}");
    let mut end = None;
    for e in events {
        let (signature, body) = deliveries.recv_timeout(Duration::from_secs(10)).unwrap();
        verify(&signature, &body);
        let delivered: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(delivered["id"], e["id"], "delivered in order");
        assert_eq!(delivered["type"], "invoice.payment_failed");
        let invoice = &delivered["data"]["object"];
        assert_eq!(invoice["billing_reason"], "subscription_cycle");
        assert_eq!(invoice["status"], "open");
        let period = &invoice["lines"]["data"][0]["period"];
        if let Some(end) = end {
            assert_eq!(period["start"], end, "periods follow each other");
        }
        end = Some(period["end"].clone());
    }
    let sub: Value = http
        .get(format!(
            "{base}/v1/subscriptions/{}",
            paid[0]["data"]["object"]["subscription"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(sub["status"], "past_due");
    assert_eq!(
        Some(sub["items"]["data"][0]["current_period_end"].clone()),
        end
    );
}
