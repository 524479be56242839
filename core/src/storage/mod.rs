//! The DynamoDB adapter shared by the poller and the functions: one table, string keys, item
//! mapping kept in [`records`] (the parts several item shapes share in [`item_parts`], the
//! hot-path shapes' decoding in [`value_decoding`]). Tested against DynamoDB Local, never an
//! in-memory twin.
//!
//! A write that changes what the poller watches — a session item, a token list's version —
//! is recorded in the chain's session log in the same transaction (`session_log`); a writer
//! outside this module records a session it changed with [`Table::record_session_change`].
//!
//! Who writes and who reads each item kind is the book's table layout page
//! (`docs/src/architecture/table.md`), included below; the key formats are in [`keys`], whose
//! tests keep its table and this one naming the same item kinds.
//!
#![doc = include_str!("../../../docs/src/architecture/table.md")]

mod api_keys;
mod balances;
mod chain_log;
mod cursor;
mod error;
mod feed;
mod holds;
mod item_parts;
pub mod keys;
mod lists;
mod metadata_cache;
mod orders;
mod rate;
mod records;
pub mod retry;
mod schema;
mod sealing;
mod session_log;
mod sessions;
mod stream;
mod stream_record;
mod stream_slots;
mod token_facts;
mod value_decoding;
mod webhooks;

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::get_item::builders::GetItemFluentBuilder;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::builders::KeysAndAttributesBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, PutRequest, WriteRequest};

pub use balances::{ValueWrite, WalletValues};
pub use chain_log::{
    ChainLogEntry, READ_OVERLAP_MS as CHAIN_LOG_READ_OVERLAP_MS,
    RECENT_OVERLAP_MS as CHAIN_LOG_RECENT_OVERLAP_MS,
};
pub use error::StorageError;
pub use lists::CachedListHead;
pub use metadata_cache::CachedMetadata;
pub use session_log::{
    READ_OVERLAP_MS as SESSION_LOG_READ_OVERLAP_MS,
    RECENT_OVERLAP_MS as SESSION_LOG_RECENT_OVERLAP_MS, SessionChange, SessionLogEntry,
};
pub use stream::{
    StreamImage, balance_item_from_image, feed_entry_from_image, feed_event_from_image,
    image_is_first_read, image_version, order_from_image,
};
pub use stream_record::stream_record;
pub use stream_slots::SlotLease;
pub use token_facts::{TokenFact, UNREADABLE_FOR_SECS};
pub use webhooks::{WebhookCreation, webhook_replay_requested};

use crate::config::Settings;

type Item = HashMap<String, AttributeValue>;

/// The service's table.
#[derive(Debug, Clone)]
pub struct Table {
    client: Client,
    name: String,
}

/// The outcome of a conditional write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Yes,
    /// The condition failed: the stored value is the same, or from a later block.
    Skipped,
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn is_condition_failure<E, R>(err: &SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    err.as_service_error().and_then(|e| e.code()) == Some("ConditionalCheckFailedException")
}

/// A conditional write's outcome: a failed condition is an answer, not an error.
fn written<T, E, R>(result: Result<T, SdkError<E, R>>) -> Result<Written, StorageError>
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match result {
        Ok(_) => Ok(Written::Yes),
        Err(e) if is_condition_failure(&e) => Ok(Written::Skipped),
        Err(e) => Err(StorageError::from_sdk(e)),
    }
}

fn to_item<T: serde::Serialize>(record: T) -> Result<Item, StorageError> {
    serde_dynamo::to_item(record).map_err(|e| StorageError::corrupt("<new item>", e))
}

/// One record's put, for a batch write.
fn put_request(record: impl serde::Serialize) -> Result<WriteRequest, StorageError> {
    let put = PutRequest::builder()
        .set_item(Some(to_item(record)?))
        .build()
        .map_err(StorageError::refused)?;
    Ok(WriteRequest::builder().put_request(put).build())
}

fn from_item<T: serde::de::DeserializeOwned>(item: Item) -> Result<T, StorageError> {
    let key = item_key(&item);
    serde_dynamo::from_item(item).map_err(|e| StorageError::corrupt(key, e))
}

fn item_key(item: &Item) -> String {
    let get = |k| {
        item.get(k)
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default()
    };
    format!("{}/{}", get("pk"), get("sk"))
}

impl Table {
    /// The table `settings` name (`TABLE_NAME`), through a client built from the
    /// environment's AWS configuration and the endpoint override `DYNAMODB_ENDPOINT`
    /// (DynamoDB Local): how every binary of the service reaches it.
    pub async fn connect(settings: &Settings) -> Self {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(endpoint) = settings.table.endpoint.as_deref() {
            loader = loader.endpoint_url(endpoint);
        }
        Self::new(Client::new(&loader.load().await), &settings.table.name)
    }

    pub fn new(client: Client, name: impl Into<String>) -> Self {
        Self {
            client,
            name: name.into(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// An update of one item, by key; the caller adds the expressions.
    fn update(&self, pk: String, sk: impl Into<String>) -> UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.name)
            .key("pk", s(pk))
            .key("sk", s(sk))
    }

    /// A consistent read of one item, by key; the caller may narrow what it returns.
    fn read_item(&self, pk: String, sk: impl Into<String>) -> GetItemFluentBuilder {
        self.client
            .get_item()
            .table_name(&self.name)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .consistent_read(true)
    }

    /// A query of one partition: `condition` names the partition `:pk`; the caller adds the
    /// rest of the condition's values and the read's options.
    fn query(&self, condition: &str, pk: String) -> QueryFluentBuilder {
        self.client
            .query()
            .table_name(&self.name)
            .key_condition_expression(condition)
            .expression_attribute_values(":pk", s(pk))
    }

    /// Every item `query` matches, page after page.
    async fn query_items(&self, query: QueryFluentBuilder) -> Result<Vec<Item>, StorageError> {
        let mut items = vec![];
        let mut pages = query.into_paginator().items().send();
        while let Some(item) = pages.next().await {
            items.push(item.map_err(StorageError::from_sdk)?);
        }
        Ok(items)
    }

    /// The items at `keys` (an absent one is left out of the answer), by BatchGetItem of
    /// [`BATCH_GET`] keys at a time; keys DynamoDB leaves unprocessed (under throttling) are
    /// asked again with backoff. `shape` sets each request's consistency and projection.
    async fn batch_get(
        &self,
        keys: Vec<Item>,
        shape: impl Fn(KeysAndAttributesBuilder) -> KeysAndAttributesBuilder,
    ) -> Result<Vec<Item>, StorageError> {
        let mut items = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(BATCH_GET) {
            let mut pending: Option<KeysAndAttributes> = Some(
                shape(KeysAndAttributes::builder().set_keys(Some(chunk.to_vec())))
                    .build()
                    .map_err(StorageError::refused)?,
            );
            let mut attempt = 0;
            while let Some(request) = pending.take() {
                batch_backoff(&mut attempt).await?;
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.name, request)
                    .send()
                    .await
                    .map_err(StorageError::from_sdk)?;
                items.extend(
                    out.responses
                        .and_then(|mut r| r.remove(&self.name))
                        .unwrap_or_default(),
                );
                pending = out
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(&self.name))
                    .filter(|k| !k.keys.is_empty());
            }
        }
        Ok(items)
    }

    /// Writes a batch of at most 25 requests, sending what DynamoDB leaves unprocessed
    /// (under throttling) again with backoff.
    async fn batch_write(&self, mut requests: Vec<WriteRequest>) -> Result<(), StorageError> {
        let mut attempt = 0;
        while !requests.is_empty() {
            batch_backoff(&mut attempt).await?;
            let out = self
                .client
                .batch_write_item()
                .request_items(&self.name, requests)
                .send()
                .await
                .map_err(StorageError::from_sdk)?;
            requests = out
                .unprocessed_items
                .and_then(|mut u| u.remove(&self.name))
                .unwrap_or_default();
        }
        Ok(())
    }

    /// Writes a whole item, unconditionally, from its record.
    async fn put(&self, record: impl serde::Serialize) -> Result<(), StorageError> {
        self.client
            .put_item()
            .table_name(&self.name)
            .set_item(Some(to_item(record)?))
            .send()
            .await
            .map_err(StorageError::from_sdk)?;
        Ok(())
    }

    /// One item by key (a consistent read), decoded through its record type.
    async fn get<R, T>(&self, pk: String, sk: impl Into<String>) -> Result<Option<T>, StorageError>
    where
        R: serde::de::DeserializeOwned,
        T: TryFrom<R, Error = StorageError>,
    {
        let out = self
            .read_item(pk, sk)
            .send()
            .await
            .map_err(StorageError::from_sdk)?;
        out.item
            .map(|i| T::try_from(from_item::<R>(i)?))
            .transpose()
    }

    /// A number attribute of one item (0 when the item or the attribute is absent), read
    /// consistently: the per-chain counters (sessions version, live count, token facts).
    async fn number(&self, pk: String, sk: &str, name: &str) -> Result<u64, StorageError> {
        let out = self
            .read_item(pk, sk)
            .projection_expression("#attr")
            .expression_attribute_names("#attr", name)
            .send()
            .await
            .map_err(StorageError::from_sdk)?;
        Ok(out
            .item
            .as_ref()
            .and_then(|i| i.get(name))
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0))
    }

    /// Every item of partition `pk` (a consistent read).
    async fn query_all(&self, pk: String) -> Result<Vec<Item>, StorageError> {
        self.query_items(self.query("pk = :pk", pk).consistent_read(true))
            .await
    }
}

/// Most keys in one BatchGetItem (the DynamoDB limit).
const BATCH_GET: usize = 100;

/// A table key: partition and sort key.
fn item_key_of(pk: String, sk: String) -> Item {
    HashMap::from([("pk".to_string(), s(pk)), ("sk".to_string(), s(sk))])
}

/// Pauses before retries of unprocessed batch items: 50 ms, doubled up to 800 ms.
const BATCH_BACKOFF: crate::runtime::backoff::Backoff = crate::runtime::backoff::Backoff::new(
    std::time::Duration::from_millis(25),
    std::time::Duration::from_millis(800),
);

/// Waits before a retry of unprocessed batch items (not before the first try); gives up after
/// a bounded number of tries so a throttled table surfaces as an error, not a hang.
async fn batch_backoff(attempt: &mut u32) -> Result<(), StorageError> {
    const TRIES: u32 = 8;
    if *attempt >= TRIES {
        return Err(StorageError::unavailable(std::io::Error::other(
            "batch request still unprocessed after retries",
        )));
    }
    if *attempt > 0 {
        tokio::time::sleep(BATCH_BACKOFF.pause(*attempt)).await;
    }
    *attempt += 1;
    Ok(())
}
