//! A counting proxy: sits between a service and its upstream (anvil or DynamoDB Local) and
//! counts what passes, so the bench measures requests independently of the measured process.
//!
//! JSON-RPC mode counts every call by method, one per element of a batch array, over HTTP and
//! over WebSocket frames. DynamoDB mode counts operations (`X-Amz-Target`) and, because it asks
//! for `ReturnConsumedCapacity: TOTAL` on every request, the read and write units DynamoDB
//! Local reports for them. The counting is a hook on `e2e::relay`, which does the forwarding.
//! A bench may also hold each request for a while first ([`CountingProxy::set_latency`]): the
//! emulators answer in well under a millisecond, where DynamoDB takes a few.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use e2e::relay::{Relay, RelayHook, RelayResponse, Step, json_rpc_methods};
use hyper::StatusCode;
use hyper::http::request::Parts;
use serde_json::Value;

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
    /// Microseconds each request is held before it is forwarded.
    latency_us: Arc<AtomicU64>,
    /// Stopped when the last clone goes.
    _relay: Arc<Relay>,
}

/// What the proxy counts, as a hook on the relay.
struct Counter {
    mode: Mode,
    counts: Arc<Mutex<Counts>>,
    latency_us: Arc<AtomicU64>,
}

impl Counter {
    fn add(&self, key: String, requests: u64, read_units: f64, write_units: f64) {
        if let Ok(mut c) = self.counts.lock() {
            let e = c.entry(key).or_default();
            e.requests += requests;
            e.read_units += read_units;
            e.write_units += write_units;
        }
    }

    fn count_json_rpc(&self, body: &[u8], prefix: &str) {
        let Some(methods) = json_rpc_methods(body) else {
            self.add(format!("{prefix}<unparsed>"), 1, 0.0, 0.0);
            return;
        };
        for method in methods {
            self.add(format!("{prefix}{method}"), 1, 0.0, 0.0);
        }
    }
}

/// A forwarded DynamoDB request, for the units of its answer.
struct DynamoRequest {
    key: String,
    keys_read: f64,
    consistent: bool,
}

impl RelayHook for Counter {
    type Forwarded = Option<DynamoRequest>;

    async fn request(&self, head: &Parts, body: Bytes) -> Step<Option<DynamoRequest>> {
        let latency = self.latency_us.load(Ordering::Relaxed);
        if latency > 0 {
            tokio::time::sleep(Duration::from_micros(latency)).await;
        }
        if self.mode == Mode::JsonRpc {
            self.count_json_rpc(&body, "");
            return Step::Forward(body, None);
        }
        let target = head
            .headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok());
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
        let (body, key) = dynamo_request(target, &body);
        Step::Forward(
            body,
            Some(DynamoRequest {
                key,
                keys_read,
                consistent,
            }),
        )
    }

    async fn response(
        &self,
        dynamo: Option<DynamoRequest>,
        status: StatusCode,
        body: &Bytes,
    ) -> Option<RelayResponse> {
        let DynamoRequest {
            key,
            keys_read,
            consistent,
        } = dynamo?;
        let (mut read, write) = consumed_units(body, is_write(&key));
        let is_read = ["GetItem", "Query", "Scan", "BatchGetItem"]
            .iter()
            .any(|op| key.starts_with(op));
        if is_read && status.is_success() {
            // DynamoDB Local reports 0 units for a read that finds nothing; DynamoDB bills
            // at least one 4 KB unit per request — per key of a batch read — (half for an
            // eventually consistent read).
            read = read.max(keys_read * if consistent { 1.0 } else { 0.5 });
        }
        self.add(key, 1, read, write);
        None
    }

    fn client_frame(&self, text: &str) {
        self.count_json_rpc(text.as_bytes(), "ws:");
    }
}

impl CountingProxy {
    /// Listens on a free local port and forwards to `upstream_port` on 127.0.0.1.
    pub async fn start(upstream_port: u16, mode: Mode) -> anyhow::Result<Self> {
        let counts = Arc::new(Mutex::new(Counts::new()));
        let latency_us = Arc::new(AtomicU64::new(0));
        let counter = Arc::new(Counter {
            mode,
            counts: counts.clone(),
            latency_us: latency_us.clone(),
        });
        let relay = Relay::start(([127, 0, 0, 1], upstream_port).into(), counter).await?;
        Ok(Self {
            url: format!("127.0.0.1:{}", relay.addr.port()),
            counts,
            latency_us,
            _relay: Arc::new(relay),
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

    /// Holds every request from now on `latency` before forwarding it (zero: none).
    pub fn set_latency(&self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.latency_us.store(us, Ordering::Relaxed);
    }
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
