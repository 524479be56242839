//! A counting proxy: sits between a service and its upstream (anvil or DynamoDB Local) and
//! counts what passes, so the bench measures requests independently of the measured process.
//!
//! JSON-RPC mode counts every call by method, one per element of a batch array, over HTTP and
//! over WebSocket frames. DynamoDB mode counts operations (`X-Amz-Target`) and, because it asks
//! for `ReturnConsumedCapacity: TOTAL` on every request, the read and write units DynamoDB
//! Local reports for them.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;

/// What passed the proxy for one key (a JSON-RPC method, or a DynamoDB operation and item kind).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Count {
    pub requests: u64,
    pub read_units: f64,
    pub write_units: f64,
}

pub type Counts = BTreeMap<String, Count>;

/// Counts since a snapshot.
pub fn since(after: &Counts, before: &Counts) -> Counts {
    after
        .iter()
        .map(|(k, a)| {
            let b = before.get(k).copied().unwrap_or_default();
            let d = Count {
                requests: a.requests - b.requests,
                read_units: a.read_units - b.read_units,
                write_units: a.write_units - b.write_units,
            };
            (k.clone(), d)
        })
        .filter(|(_, d)| *d != Count::default())
        .collect()
}

/// Whether a count key (`Operation item-kind`) is a write.
pub fn is_write(key: &str) -> bool {
    WRITE_OPS.iter().any(|op| key.starts_with(op))
}

const WRITE_OPS: [&str; 5] = [
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "BatchWriteItem",
    "TransactWriteItems",
];

/// Two proxies' counts added up.
pub fn merged(a: &Counts, b: &Counts) -> Counts {
    let mut out = a.clone();
    for (k, c) in b {
        let e = out.entry(k.clone()).or_default();
        e.requests += c.requests;
        e.read_units += c.read_units;
        e.write_units += c.write_units;
    }
    out
}

pub fn total(counts: &Counts) -> Count {
    counts.values().fold(Count::default(), |t, c| Count {
        requests: t.requests + c.requests,
        read_units: t.read_units + c.read_units,
        write_units: t.write_units + c.write_units,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    JsonRpc,
    DynamoDb,
}

#[derive(Debug, Clone)]
pub struct CountingProxy {
    pub url: String,
    counts: Arc<Mutex<Counts>>,
}

struct Shared {
    upstream: String,
    upstream_ws: String,
    mode: Mode,
    http: reqwest::Client,
    counts: Arc<Mutex<Counts>>,
}

impl Shared {
    fn add(&self, key: String, requests: u64, read_units: f64, write_units: f64) {
        if let Ok(mut c) = self.counts.lock() {
            let e = c.entry(key).or_default();
            e.requests += requests;
            e.read_units += read_units;
            e.write_units += write_units;
        }
    }
}

impl CountingProxy {
    /// Listens on a free local port and forwards to `upstream_port` on 127.0.0.1.
    pub async fn start(upstream_port: u16, mode: Mode) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let counts = Arc::new(Mutex::new(Counts::new()));
        let shared = Arc::new(Shared {
            upstream: format!("http://127.0.0.1:{upstream_port}"),
            upstream_ws: format!("ws://127.0.0.1:{upstream_port}"),
            mode,
            http: reqwest::Client::new(),
            counts: counts.clone(),
        });
        tokio::spawn(async move {
            loop {
                let (stream, _) = live_balances::accept::next(&listener).await;
                let shared = shared.clone();
                tokio::spawn(async move {
                    let _ = serve(stream, shared).await;
                });
            }
        });
        Ok(Self {
            url: format!("127.0.0.1:{}", addr.port()),
            counts,
        })
    }

    pub fn http_url(&self) -> String {
        format!("http://{}", self.url)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}", self.url)
    }

    pub fn counts(&self) -> Counts {
        self.counts.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

/// A WebSocket upgrade is told apart from plain HTTP by peeking at the request head.
async fn serve(stream: TcpStream, shared: Arc<Shared>) -> anyhow::Result<()> {
    stream.set_nodelay(true)?;
    let mut head = [0u8; 2048];
    let n = stream.peek(&mut head).await?;
    let text = String::from_utf8_lossy(&head[..n]).to_ascii_lowercase();
    if text.contains("upgrade: websocket") {
        return websocket(stream, shared).await;
    }
    let service = hyper::service::service_fn(move |req| {
        let shared = shared.clone();
        async move { forward(req, &shared).await }
    });
    hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await?;
    Ok(())
}

async fn websocket(stream: TcpStream, shared: Arc<Shared>) -> anyhow::Result<()> {
    let client = tokio_tungstenite::accept_async(stream).await?;
    let (upstream, _) = tokio_tungstenite::connect_async(shared.upstream_ws.as_str()).await?;
    let (mut client_tx, mut client_rx) = client.split();
    let (mut up_tx, mut up_rx) = upstream.split();
    let to_upstream = async {
        while let Some(Ok(msg)) = client_rx.next().await {
            if let Message::Text(text) = &msg {
                count_json_rpc(&shared, text.as_bytes(), "ws:");
            }
            up_tx.send(msg).await?;
        }
        anyhow::Ok(())
    };
    let to_client = async {
        while let Some(Ok(msg)) = up_rx.next().await {
            client_tx.send(msg).await?;
        }
        anyhow::Ok(())
    };
    // Either side closing ends both.
    tokio::select! {
        r = to_upstream => r,
        r = to_client => r,
    }
}

fn count_json_rpc(shared: &Shared, body: &[u8], prefix: &str) {
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        shared.add(format!("{prefix}<unparsed>"), 1, 0.0, 0.0);
        return;
    };
    let calls = match value {
        Value::Array(calls) => calls,
        single => vec![single],
    };
    for call in calls {
        let method = call["method"].as_str().unwrap_or("<none>");
        shared.add(format!("{prefix}{method}"), 1, 0.0, 0.0);
    }
}

type ProxyBody = Full<Bytes>;

async fn forward(
    req: Request<Incoming>,
    shared: &Shared,
) -> Result<Response<ProxyBody>, hyper::Error> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await?.to_bytes();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/".to_string(), |p| p.to_string());
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let request = serde_json::from_slice::<Value>(&body).unwrap_or_default();
    // A batch read's keys each cost a unit at least; its consistency is per table.
    let batch_get = request["RequestItems"]
        .as_object()
        .and_then(|tables| tables.values().next())
        .filter(|b| b["Keys"].is_array());
    let consistent = request["ConsistentRead"].as_bool() == Some(true)
        || batch_get.is_some_and(|b| b["ConsistentRead"].as_bool() == Some(true));
    let keys_read = batch_get
        .and_then(|b| b["Keys"].as_array())
        .map_or(1, Vec::len) as f64;
    let (body, dynamo_key) = match shared.mode {
        Mode::JsonRpc => {
            count_json_rpc(shared, &body, "");
            (body, None)
        }
        Mode::DynamoDb => {
            let (body, key) = dynamo_request(target.as_deref(), &body);
            (body, Some(key))
        }
    };
    let mut out = shared
        .http
        .request(parts.method.clone(), format!("{}{path}", shared.upstream))
        .body(body);
    for (name, value) in &parts.headers {
        if !matches!(name.as_str(), "host" | "content-length") {
            out = out.header(name, value);
        }
    }
    let reply = match out.send().await {
        Ok(r) => r,
        Err(e) => {
            return Ok(Response::builder()
                .status(502)
                .body(Full::new(Bytes::from(e.to_string())))
                .unwrap_or_default());
        }
    };
    let status = reply.status();
    let headers = reply.headers().clone();
    let bytes = reply.bytes().await.unwrap_or_default();
    if let Some(key) = dynamo_key {
        let (mut read, write) = consumed_units(&bytes, is_write(&key));
        let is_read = ["GetItem", "Query", "Scan", "BatchGetItem"]
            .iter()
            .any(|op| key.starts_with(op));
        if is_read && status.is_success() {
            // DynamoDB Local reports 0 units for a read that finds nothing; DynamoDB bills
            // at least one 4 KB unit per request — per key of a batch read — (half for an
            // eventually consistent read).
            read = read.max(keys_read * if consistent { 1.0 } else { 0.5 });
        }
        shared.add(key, 1, read, write);
    }
    let mut response = Response::builder().status(status);
    for (name, value) in &headers {
        if !matches!(
            name.as_str(),
            "content-length" | "transfer-encoding" | "connection"
        ) {
            response = response.header(name, value);
        }
    }
    Ok(response
        .body(Full::new(bytes))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()))))
}

/// Operations that accept `ReturnConsumedCapacity`.
const CAPACITY_OPS: [&str; 9] = [
    "GetItem",
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "Query",
    "Scan",
    "BatchGetItem",
    "BatchWriteItem",
    "TransactWriteItems",
];

/// Asks for consumed capacity and names the request: `Operation item-kind`, the item kind being
/// the key prefix of the partition it touches (README "Table layout"), which tells the
/// poller's, api's and fanout's traffic apart.
fn dynamo_request(target: Option<&str>, body: &Bytes) -> (Bytes, String) {
    let op = target
        .and_then(|t| t.split('.').nth(1))
        .unwrap_or("<none>")
        .to_string();
    let Ok(mut value) = serde_json::from_slice::<Value>(body) else {
        return (body.clone(), op);
    };
    let kind = item_kind(&value);
    if CAPACITY_OPS.contains(&op.as_str())
        && let Some(obj) = value.as_object_mut()
    {
        obj.insert("ReturnConsumedCapacity".into(), "TOTAL".into());
    }
    let key = match kind {
        Some(k) => format!("{op} {k}"),
        None => op,
    };
    let bytes = serde_json::to_vec(&value).map_or_else(|_| body.clone(), Bytes::from);
    (bytes, key)
}

fn item_kind(request: &Value) -> Option<String> {
    // A batch is named by its first item, a transaction by its first write (the change it
    // carries; its session-log entry comes second).
    let batch = request["RequestItems"]
        .as_object()
        .and_then(|tables| tables.values().next());
    let batched = batch
        .and_then(|items| items.get(0))
        .and_then(|item| item["PutRequest"]["Item"]["pk"]["S"].as_str())
        .or(batch.and_then(|b| b["Keys"][0]["pk"]["S"].as_str()));
    let first = &request["TransactItems"][0];
    let transacted = first["Update"]["Key"]["pk"]["S"]
        .as_str()
        .or(first["Put"]["Item"]["pk"]["S"].as_str());
    let pk = request["Key"]["pk"]["S"]
        .as_str()
        .or(request["Item"]["pk"]["S"].as_str())
        .or(request["ExpressionAttributeValues"][":pk"]["S"].as_str())
        .or(batched)
        .or(transacted)?;
    Some(
        match pk.get(..2) {
            Some("S#") => "session",
            Some("B#") => "balance",
            Some("F#") => "feed",
            Some("C#") => "cursor",
            Some("M#") => "metadata",
            Some("L#") => "list",
            Some("K#") => "token-facts",
            Some("V#") => "sessions-signal",
            Some("R#") => "rate-limit",
            Some("G#") => "change log",
            Some("Q#") => "session log",
            Some("H#") => "webhook",
            Some("W#") => "webhook index",
            _ => "other",
        }
        .into(),
    )
}

/// (read, write) capacity units in a DynamoDB answer.
fn consumed_units(body: &[u8], is_write: bool) -> (f64, f64) {
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return (0.0, 0.0);
    };
    let entries = match &value["ConsumedCapacity"] {
        Value::Array(list) => list.clone(),
        Value::Null => vec![],
        one => vec![one.clone()],
    };
    entries.iter().fold((0.0, 0.0), |(r, w), c| {
        let read = c["ReadCapacityUnits"].as_f64();
        let write = c["WriteCapacityUnits"].as_f64();
        match (read, write) {
            (None, None) => {
                // Only the total is given: reads and writes are told apart by the operation.
                let units = c["CapacityUnits"].as_f64().unwrap_or(0.0);
                if is_write {
                    (r, w + units)
                } else {
                    (r + units, w)
                }
            }
            _ => (r + read.unwrap_or(0.0), w + write.unwrap_or(0.0)),
        }
    })
}
