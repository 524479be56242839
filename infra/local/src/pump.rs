//! The local stream pump: what Lambda's event source mapping does in AWS, for DynamoDB Local.
//! It reads the table's stream shard by shard (a parent before its children), wraps records
//! in the exact event shape Lambda sends, and invokes one function (the fanout, or the
//! webhooks function in a second pump) through
//! `cargo lambda watch`'s Invoke API, passing only the records the function's filter criteria
//! match. A batch item failure is retried from the failed record;
//! after `max_retries` the rest of the batch is parked in a dead-letter file, as an on-failure
//! destination would.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use aws_sdk_dynamodbstreams::Client;
use aws_sdk_dynamodbstreams::types::{Record, ShardIteratorType};
use live_balances::runtime::backoff::Backoff;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tracing::{debug, info, warn};

use crate::stream_filter;

/// Pause before retry `n` of a failed batch: 400 ms, doubled up to 6.4 s.
const RETRY_BACKOFF: Backoff =
    Backoff::new(Duration::from_millis(200), Duration::from_millis(6400));

/// Where the pump reads and whom it invokes.
#[derive(Debug, Clone)]
pub struct PumpConfig {
    pub table_name: String,
    /// `http://127.0.0.1:9000/2015-03-31/functions/fanout/invocations`
    pub invoke_url: String,
    pub batch_size: i32,
    pub max_retries: u32,
    pub idle_poll: Duration,
    pub dead_letter: PathBuf,
    pub region: String,
    /// Start at the end of the shards open at start (`PUMP_FROM=latest`) instead of their
    /// beginning: a pump restarted for a measurement, without the backlog before it.
    pub from_latest: bool,
    /// The function's event source filter patterns ([`crate::stream_filter`]): records none of
    /// them matches are dropped, as Lambda drops them; none: every record is delivered.
    pub filters: Vec<Value>,
}

#[derive(Debug)]
pub struct Pump {
    streams: Client,
    http: reqwest::Client,
    config: PumpConfig,
}

#[derive(Debug, Default)]
struct ShardState {
    iterator: Option<String>,
    parent: Option<String>,
    /// Read from its end (a shard open when a `from_latest` pump started).
    latest: bool,
}

impl Pump {
    pub fn new(streams: Client, config: PumpConfig) -> Self {
        Self {
            streams,
            http: reqwest::Client::new(),
            config,
        }
    }

    /// Runs until the process ends.
    pub async fn run(self) -> anyhow::Result<()> {
        let stream_arn = self.stream_arn().await?;
        info!(stream = %stream_arn, invoke = %self.config.invoke_url, "pumping stream records");
        let mut open: HashMap<String, ShardState> = HashMap::new();
        let mut done: HashSet<String> = HashSet::new();
        let mut last_describe = tokio::time::Instant::now() - Duration::from_secs(60);
        let mut first = true;
        loop {
            if last_describe.elapsed() > Duration::from_secs(1) || open.is_empty() {
                self.discover(
                    &stream_arn,
                    &mut open,
                    &done,
                    first && self.config.from_latest,
                )
                .await?;
                first = false;
                last_describe = tokio::time::Instant::now();
            }
            let mut busy = false;
            let ready: Vec<String> = open
                .iter()
                .filter(|(_, s)| {
                    s.parent
                        .as_ref()
                        .is_none_or(|p| done.contains(p) || !open.contains_key(p))
                })
                .map(|(id, _)| id.clone())
                .collect();
            for shard_id in ready {
                let Some(state) = open.get_mut(&shard_id) else {
                    continue;
                };
                if state.iterator.is_none() {
                    let it = self
                        .streams
                        .get_shard_iterator()
                        .stream_arn(&stream_arn)
                        .shard_id(&shard_id)
                        .shard_iterator_type(if state.latest {
                            ShardIteratorType::Latest
                        } else {
                            ShardIteratorType::TrimHorizon
                        })
                        .send()
                        .await
                        .context("GetShardIterator")?;
                    state.iterator = it.shard_iterator;
                }
                let Some(iterator) = state.iterator.clone() else {
                    open.remove(&shard_id);
                    done.insert(shard_id);
                    continue;
                };
                let asked = tokio::time::Instant::now();
                let out = self
                    .streams
                    .get_records()
                    .shard_iterator(iterator)
                    .limit(self.config.batch_size)
                    .send()
                    .await
                    .context("GetRecords")?;
                let records = out.records.unwrap_or_default();
                if !records.is_empty() {
                    busy = true;
                    let read_ms = asked.elapsed().as_millis() as u64;
                    self.deliver(&stream_arn, records, read_ms).await?;
                }
                match out.next_shard_iterator {
                    Some(next) => state.iterator = Some(next),
                    None => {
                        debug!(shard = %shard_id, "shard closed");
                        open.remove(&shard_id);
                        done.insert(shard_id);
                    }
                }
            }
            if !busy {
                tokio::time::sleep(self.config.idle_poll).await;
            }
        }
    }

    async fn stream_arn(&self) -> anyhow::Result<String> {
        for _ in 0..100 {
            let out = self
                .streams
                .list_streams()
                .table_name(&self.config.table_name)
                .send()
                .await
                .context("ListStreams")?;
            if let Some(arn) = out
                .streams
                .unwrap_or_default()
                .into_iter()
                .find_map(|s| s.stream_arn)
            {
                return Ok(arn);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        bail!("table {} has no stream", self.config.table_name)
    }

    async fn discover(
        &self,
        stream_arn: &str,
        open: &mut HashMap<String, ShardState>,
        done: &HashSet<String>,
        latest: bool,
    ) -> anyhow::Result<()> {
        let mut start: Option<String> = None;
        loop {
            let out = self
                .streams
                .describe_stream()
                .stream_arn(stream_arn)
                .set_exclusive_start_shard_id(start.take())
                .send()
                .await
                .context("DescribeStream")?;
            let Some(desc) = out.stream_description else {
                return Ok(());
            };
            for shard in desc.shards.unwrap_or_default() {
                let Some(id) = shard.shard_id else { continue };
                if !done.contains(&id) && !open.contains_key(&id) {
                    debug!(shard = %id, "new shard");
                    open.insert(
                        id,
                        ShardState {
                            iterator: None,
                            parent: shard.parent_shard_id,
                            latest,
                        },
                    );
                }
            }
            match desc.last_evaluated_shard_id {
                Some(last) => start = Some(last),
                None => return Ok(()),
            }
        }
    }

    /// Invokes the function with the records (read from the stream in `read_ms`), retrying
    /// from the first failed one.
    async fn deliver(
        &self,
        stream_arn: &str,
        records: Vec<Record>,
        read_ms: u64,
    ) -> anyhow::Result<()> {
        let read = records.len();
        let mut pending: Vec<Value> = records
            .iter()
            .map(|r| lambda_record(r, stream_arn, &self.config.region))
            .filter(|r| stream_filter::passes(r, &self.config.filters))
            .collect();
        let mut attempt = 0;
        while !pending.is_empty() {
            let invoked = tokio::time::Instant::now();
            let answer = self.invoke(&pending).await;
            // Where a busy stream's time goes: reading it, or the function.
            debug!(
                read,
                passed = pending.len(),
                read_ms,
                invoke_ms = invoked.elapsed().as_millis() as u64,
                "batch delivered"
            );
            let failed_from = match answer {
                Ok(None) => return Ok(()),
                Ok(Some(sequence)) => pending
                    .iter()
                    .position(|r| {
                        r["dynamodb"]["SequenceNumber"].as_str() == Some(sequence.as_str())
                    })
                    .unwrap_or(0),
                Err(error) => {
                    warn!(%error, invoke = %self.config.invoke_url, "invocation failed");
                    0
                }
            };
            pending.drain(..failed_from);
            attempt += 1;
            if attempt > self.config.max_retries {
                self.park(&pending).await?;
                return Ok(());
            }
            let pause = RETRY_BACKOFF.pause(attempt);
            warn!(
                attempt,
                remaining = pending.len(),
                retry_in_ms = pause.as_millis() as u64,
                "retrying batch"
            );
            tokio::time::sleep(pause).await;
        }
        Ok(())
    }

    /// `Ok(None)` when every record was processed, `Ok(Some(seq))` for a batch item failure.
    async fn invoke(&self, records: &[Value]) -> anyhow::Result<Option<String>> {
        let event = json!({ "Records": records });
        let response = self
            .http
            .post(&self.config.invoke_url)
            .json(&event)
            .send()
            .await?;
        let status = response.status();
        let function_error = response.headers().contains_key("x-amz-function-error");
        let body = response.text().await?;
        if !status.is_success() || function_error {
            bail!("the function answered {status}: {body}");
        }
        let reply: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        let failure = reply["batchItemFailures"]
            .as_array()
            .and_then(|f| f.first())
            .and_then(|f| f["itemIdentifier"].as_str())
            .map(str::to_string);
        Ok(failure)
    }

    async fn park(&self, records: &[Value]) -> anyhow::Result<()> {
        warn!(records = records.len(), file = %self.config.dead_letter.display(), "parking records after retries");
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.config.dead_letter)
            .await?;
        for r in records {
            file.write_all(format!("{r}\n").as_bytes()).await?;
        }
        Ok(())
    }
}

/// One stream record in the shape Lambda delivers it (a `DynamoDBEvent` record).
pub fn lambda_record(record: &Record, stream_arn: &str, region: &str) -> Value {
    let change = record.dynamodb();
    let image = |m: Option<&HashMap<String, aws_sdk_dynamodbstreams::types::AttributeValue>>| {
        m.map(|m| serde_json::to_value(serde_dynamo::Item::from(m.clone())).unwrap_or(Value::Null))
    };
    let mut dynamodb = json!({
        "ApproximateCreationDateTime": change
            .and_then(|c| c.approximate_creation_date_time())
            .map(|t| t.secs())
            .unwrap_or_default(),
        "Keys": image(change.and_then(|c| c.keys())),
        "SequenceNumber": change.and_then(|c| c.sequence_number()),
        "SizeBytes": change.and_then(|c| c.size_bytes()),
        "StreamViewType": change.and_then(|c| c.stream_view_type()).map(|v| v.as_str()),
    });
    if let Some(new) = image(change.and_then(|c| c.new_image())) {
        dynamodb["NewImage"] = new;
    }
    if let Some(old) = image(change.and_then(|c| c.old_image())) {
        dynamodb["OldImage"] = old;
    }
    json!({
        "eventID": record.event_id(),
        "eventName": record.event_name().map(|n| n.as_str()),
        "eventVersion": record.event_version().unwrap_or("1.1"),
        "eventSource": "aws:dynamodb",
        "awsRegion": record.aws_region().unwrap_or(region),
        "dynamodb": dynamodb,
        "eventSourceARN": stream_arn,
    })
}
