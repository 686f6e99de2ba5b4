//! HTTP plumbing, shaped like `pve-http-server` (`PVE::APIServer::AnyEvent`):
//! authentication, body decoding, proxying to nodes, the response envelope
//! and error shapes, and the "drop the response" fault.

use std::any::Any;
use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Mutex, OnceLock};

use actix_web::dev::{Extensions, ServerHandle};
use actix_web::http::StatusCode;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Value, json};

use crate::api::{self, Answer};
use crate::model::RequestLog;
use crate::schema::{self, Param};
use crate::{Shared, lock};

/// The API's base path; only the JSON format is simulated.
const BASE: &str = "/api2/json";

/// A duplicate of the connection's socket, kept so a handler can cut the
/// connection (the drop-response fault).
struct ConnSocket(socket2::Socket);

/// Binds `addr` and runs the server on the current tokio runtime.
pub(crate) fn serve(
    shared: Shared,
    addr: SocketAddr,
) -> std::io::Result<(SocketAddr, ServerHandle)> {
    let listener = std::net::TcpListener::bind(addr)?;
    let local = listener.local_addr()?;
    let data = web::Data::new(shared);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .default_service(web::to(handle))
    })
    .on_connect(remember_socket)
    .workers(2)
    .disable_signals()
    .listen(listener)?
    .run();
    let handle = server.handle();
    tokio::spawn(async move {
        if let Err(e) = server.await {
            tracing::error!(error = %e, "pve-sim server stopped");
        }
    });
    Ok((local, handle))
}

fn remember_socket(conn: &dyn Any, ext: &mut Extensions) {
    if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>()
        && let Ok(sock) = socket2::SockRef::from(tcp).try_clone()
    {
        ext.insert(ConnSocket(sock));
    }
}

/// An HTTP answer before it becomes a response.
#[derive(Debug)]
pub(crate) struct Reply {
    pub status: u16,
    /// Reason phrase; `None` for the standard one.
    pub reason: Option<String>,
    /// JSON body; `None` for an empty body.
    pub body: Option<Value>,
}

impl Reply {
    /// `{"data": …}` with extra top-level attributes (`total`).
    fn ok(data: Value, extra: BTreeMap<String, Value>) -> Reply {
        let mut body = json!({ "data": data });
        for (k, v) in extra {
            body[k] = v;
        }
        Reply {
            status: 200,
            reason: None,
            body: Some(body),
        }
    }

    /// PVE's error: the message's first line as the reason phrase, and
    /// `{"data":null,"message":"…\n"}`.
    pub fn error(status: u16, message: &str) -> Reply {
        let mut msg = message.to_owned();
        if !msg.ends_with('\n') {
            msg.push('\n');
        }
        Reply {
            status,
            reason: Some(message.to_owned()),
            body: Some(json!({ "data": null, "message": msg })),
        }
    }

    /// A transport-level error of pve-http-server: status and reason, no body.
    fn bare(status: u16, reason: &str) -> Reply {
        Reply {
            status,
            reason: Some(reason.to_owned()),
            body: None,
        }
    }

    /// 400 `Parameter verification failed.` with the per-parameter errors.
    fn params(errors: BTreeMap<String, String>) -> Reply {
        Reply {
            status: 400,
            reason: Some("Parameter verification failed.".to_owned()),
            body: Some(json!({
                "data": null,
                "errors": errors,
                "message": "Parameter verification failed.\n",
            })),
        }
    }

    fn into_response(self) -> HttpResponse {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = match self.body {
            Some(body) => HttpResponse::build(status)
                .content_type("application/json;charset=UTF-8")
                .body(body.to_string()),
            None => HttpResponse::build(status).finish(),
        };
        if let Some(reason) = self.reason {
            resp.head_mut().reason = Some(intern_reason(&reason));
        }
        resp
    }
}

/// actix-web takes reason phrases as `&'static str`; messages are interned
/// (leaked once per distinct text, a few per test) to use PVE's dynamic ones.
fn intern_reason(message: &str) -> &'static str {
    static POOL: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    // pve-http-server sends the first line of the message.
    let line: String = message
        .lines()
        .next()
        .unwrap_or("")
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let Ok(mut pool) = POOL.get_or_init(Default::default).lock() else {
        return "Error";
    };
    if let Some(s) = pool.get(line.as_str()) {
        return s;
    }
    let leaked: &'static str = Box::leak(line.into_boxed_str());
    pool.insert(leaked);
    leaked
}

/// `decode_urlencoded`: repeated keys are joined with NUL, as PVE does.
fn decode_form(text: &str, into: &mut Vec<(String, Param)>) -> Result<(), String> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(text).map_err(|e| e.to_string())?;
    for (k, v) in pairs {
        if let Some((_, Param::Scalar(old))) = into.iter_mut().find(|(name, _)| *name == k) {
            old.push('\0');
            old.push_str(&v);
        } else {
            into.push((k, Param::Scalar(v)));
        }
    }
    Ok(())
}

/// A JSON body's members as parameters: strings as they are, numbers as
/// text, booleans as `1`/`0`, `null` as absent, arrays/objects as such.
fn decode_json(body: &[u8], into: &mut Vec<(String, Param)>) -> Result<(), String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("malformed JSON string: {e}"))?;
    let Value::Object(map) = value else {
        return Err("Not a HASH reference".to_owned());
    };
    for (k, v) in map {
        let p = match v {
            Value::Null => continue,
            Value::String(s) => Param::Scalar(s),
            Value::Number(n) => Param::Scalar(n.to_string()),
            Value::Bool(b) => Param::Scalar(if b { "1" } else { "0" }.to_owned()),
            Value::Array(_) => Param::Complex("ARRAY"),
            Value::Object(_) => Param::Complex("HASH"),
        };
        into.push((k, p));
    }
    Ok(())
}

fn shown(p: &Param) -> String {
    match p {
        Param::Scalar(s) => s.clone(),
        Param::Complex(kind) => kind.to_string(),
    }
}

/// Checks `Authorization: PVEAPIToken=USER@REALM!TOKENID=SECRET`; returns
/// the token id (the task owner in UPIDs) or the 401 reason.
fn authenticate(req: &HttpRequest, tokens: &[(String, String)]) -> Result<String, &'static str> {
    let Some(header) = req
        .headers()
        .get("authorization")
        .and_then(|h| h.to_str().ok())
    else {
        return Err("No ticket");
    };
    let Some(value) = header.trim().strip_prefix("PVEAPIToken=") else {
        return Err("No ticket");
    };
    let (id, secret) = value.split_once('=').ok_or("authentication failure")?;
    if tokens.iter().any(|(i, s)| i == id && s == secret) {
        Ok(id.to_owned())
    } else {
        Err("authentication failure")
    }
}

async fn handle(req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let method = req.method().as_str().to_owned();
    let path = req.path().to_owned();
    let delay = {
        let mut st = lock(&shared);
        st.faults
            .delays
            .iter()
            .position(|(r, _)| r.method == method && path.ends_with(&r.suffix))
            .map(|i| st.faults.delays.remove(i).1)
    };
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    let mut sent: Vec<(String, Param)> = Vec::new();
    let (reply, tasks) = process(&req, &method, &path, &body, &shared, &mut sent);

    let mut st = lock(&shared);
    let status = reply.status;
    st.requests.push(RequestLog {
        method: method.clone(),
        path: path.clone(),
        params: sent.iter().map(|(k, v)| (k.clone(), shown(v))).collect(),
        status,
    });
    let drop_it = st
        .faults
        .drops
        .iter()
        .position(|r| r.method == method && path.ends_with(&r.suffix))
        .map(|i| st.faults.drops.remove(i))
        .is_some();
    let duration = st.faults.task_duration;
    if method != "GET" {
        st.save();
    }
    drop(st);

    for upid in tasks {
        let shared = shared.get_ref().clone();
        actix_web::rt::spawn(async move {
            tokio::time::sleep(duration).await;
            let mut st = lock(&shared);
            st.finish_task(&upid);
            st.save();
        });
    }
    tracing::debug!(%method, %path, status, dropped = drop_it, "request");
    if drop_it && let Some(conn) = req.conn_data::<ConnSocket>() {
        let _ = conn.0.shutdown(std::net::Shutdown::Both);
    }
    reply.into_response()
}

/// Everything between the request and the reply; returns the tasks started.
fn process(
    req: &HttpRequest,
    method: &str,
    path: &str,
    body: &[u8],
    shared: &Shared,
    sent: &mut Vec<(String, Param)>,
) -> (Reply, Vec<String>) {
    let none = Vec::new();
    // Parameters first, so the request log has them even when rejected.
    let mut query = Vec::new();
    let query_ok = decode_form(req.query_string(), &mut query);
    let mut body_params = Vec::new();
    let ctype = req
        .headers()
        .get("content-type")
        .and_then(|h| h.to_str().ok())
        .map(|c| {
            c.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    let body_result = if body.is_empty() {
        Ok(())
    } else if !matches!(method, "POST" | "PUT") {
        Err(Reply::bare(
            501,
            &format!("Unexpected content for method '{method}'"),
        ))
    } else {
        match ctype.as_deref() {
            // No Content-Type is decoded as a form, as pve-http-server does.
            None | Some("application/x-www-form-urlencoded") => {
                let text = String::from_utf8_lossy(body);
                decode_form(&text, &mut body_params).map_err(|e| Reply::bare(501, &e))
            }
            Some("application/json") => {
                decode_json(body, &mut body_params).map_err(|e| Reply::bare(501, &e))
            }
            Some(other) => Err(Reply::bare(
                506,
                &format!("upload 'Content-Type '{other}' not implemented"),
            )),
        }
    };
    sent.extend(body_params.iter().cloned());
    sent.extend(query.iter().cloned());

    let Some(rel) = path
        .strip_prefix(BASE)
        .filter(|r| r.is_empty() || r.starts_with('/'))
    else {
        return (Reply::bare(501, "no such uri"), none);
    };
    let rel = if rel.is_empty() { "/" } else { rel };

    let tokens = lock(shared).cfg.tokens.clone();
    let user = match authenticate(req, &tokens) {
        Ok(u) => u,
        Err(reason) => return (Reply::bare(401, reason), none),
    };
    if let Err(reply) = body_result {
        return (reply, none);
    }
    if let Err(e) = query_ok {
        return (Reply::bare(501, &e), none);
    }

    let schema = match schema::schema() {
        Ok(s) => s,
        Err(e) => return (Reply::error(500, &e), none),
    };
    let not_implemented = || Reply::error(501, &format!("Method '{method} {rel}' not implemented"));
    let Some(matched) = schema.lookup(method, rel) else {
        return (not_implemented(), none);
    };
    let Some(info) = matched.info else {
        return (not_implemented(), none);
    };

    // Calls with `proxyto => 'node'` go to that node's pveproxy.
    if info.get("proxyto").and_then(Value::as_str) == Some("node")
        && let Some((_, node)) = matched.vars.iter().find(|(k, _)| k == "node")
    {
        let st = lock(shared);
        if st.node(node).is_none() {
            let msg = format!(
                "hostname lookup '{node}' failed - failed to get address info for: {node}: Name or service not known"
            );
            return (Reply::error(500, &msg), none);
        }
        if st.faults.unreachable.contains(node) {
            return (Reply::bare(595, "No route to host"), none);
        }
    }

    // URI variables and parameters form one set, as in PVE's RESTHandler.
    let mut params: BTreeMap<String, Param> = BTreeMap::new();
    for (k, v) in body_params.into_iter().chain(query) {
        if k != "_dc" {
            params.insert(k, v);
        }
    }
    let mut dup = BTreeMap::new();
    for (k, v) in &matched.vars {
        if params.contains_key(k) {
            dup.insert(
                k.clone(),
                "duplicate parameter (already defined in URI)".to_owned(),
            );
        }
        params.insert(k.clone(), Param::Scalar(v.clone()));
    }
    if !dup.is_empty() {
        return (Reply::params(dup), none);
    }
    let params = match schema::validate(info, &params) {
        Ok(p) => p,
        Err(errors) => return (Reply::params(errors), none),
    };

    let mut st = lock(shared);
    match api::dispatch(&mut st, method, matched.template, &params, &user) {
        Answer::Data { data, extra, tasks } => (Reply::ok(data, extra), tasks),
        Answer::Error(reply) => (reply, none),
        Answer::NotSimulated => (not_implemented(), none),
    }
}
