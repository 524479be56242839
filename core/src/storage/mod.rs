//! The DynamoDB adapter shared by the poller and the functions: one table, string keys, item
//! mapping kept in [`records`]. Tested against DynamoDB Local, never an in-memory twin.

mod chain_log;
mod error;
mod feed_probe;
pub mod keys;
mod lists;
mod rate;
mod records;
mod schema;
mod session_version;
mod stream;
mod tokens;

use std::collections::{BTreeMap, HashMap};

use alloy::primitives::Address;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::AttributeValue;

pub use chain_log::{
    ChainLogEntry, READ_OVERLAP_MS as CHAIN_LOG_READ_OVERLAP_MS,
    RECENT_OVERLAP_MS as CHAIN_LOG_RECENT_OVERLAP_MS,
};
pub use error::StorageError;
pub use lists::CachedListHead;
pub use stream::{StreamImage, balance_item_from_image, image_version};
pub use tokens::CachedMetadata;

use crate::address::lower;
use crate::model::{BalanceItem, ChainCursor, FeedEntry, FeedPosition, Session, SessionAddition};
use crate::token::TokenMetadata;
use records::{BalanceRecord, CursorRecord, FeedRecord, SessionRecord, read_text};

type Item = HashMap<String, AttributeValue>;

/// Builds a DynamoDB client from the environment's AWS configuration, with an optional
/// endpoint override (DynamoDB Local).
pub async fn dynamodb_client(endpoint: Option<&str>) -> Client {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(endpoint) = endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    Client::new(&loader.load().await)
}

/// A wallet's tracked values and the metadata of their tokens, where known.
#[derive(Debug, Clone, Default)]
pub struct WalletValues {
    pub items: Vec<BalanceItem>,
    pub metadata: BTreeMap<Address, TokenMetadata>,
    /// Each item's version (see [`crate::model::FeedEntry::version`]).
    pub versions: HashMap<crate::model::BalanceKey, u64>,
}

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

    /// Adds tokens, spenders and lists to the wallet's session, creating it if needed, and
    /// pushes its expiry to `expires_at`. One atomic update: concurrent clients only ever add.
    ///
    /// `room` bounds the session's size: the update happens only while the session holds at
    /// most `room` tokens (the limit minus the tokens this addition may add), so concurrent
    /// additions can never take it past the limit. `None` when there is no room.
    pub async fn add_to_session(
        &self,
        chain_id: u64,
        owner: &Address,
        addition: &SessionAddition,
        room: usize,
        now: u64,
        expires_at: u64,
    ) -> Result<Option<Session>, StorageError> {
        let mut update = String::from(
            "SET chain_id = :chain, #owner = :owner, created_at = if_not_exists(created_at, :now), \
             expires_at = :exp, #ttl = :exp",
        );
        let mut values: Vec<(&str, AttributeValue)> = vec![
            (":chain", n(chain_id)),
            (":owner", s(lower(owner))),
            (":now", n(now)),
            (":exp", n(expires_at)),
            (":room", n(room)),
        ];
        let sets: [(&str, &str, Vec<String>); 3] = [
            (
                "tokens",
                ":tokens",
                addition.tokens.iter().map(lower).collect(),
            ),
            (
                "spenders",
                ":spenders",
                addition.spenders.iter().map(lower).collect(),
            ),
            (
                "token_lists",
                ":lists",
                addition.token_lists.iter().cloned().collect(),
            ),
        ];
        // DynamoDB sets cannot be empty, so an empty addition is left out of the expression.
        let adds: Vec<String> = sets
            .into_iter()
            .filter(|(_, _, v)| !v.is_empty())
            .map(|(attr, placeholder, v)| {
                values.push((placeholder, AttributeValue::Ss(v)));
                format!("{attr} {placeholder}")
            })
            .collect();
        if !adds.is_empty() {
            update.push_str(" ADD ");
            update.push_str(&adds.join(", "));
        }
        let mut request = self
            .client
            .update_item()
            .table_name(&self.name)
            .key("pk", s(keys::session_pk(chain_id)))
            .key("sk", s(keys::session_sk(owner)))
            .update_expression(update)
            .condition_expression("attribute_not_exists(tokens) OR size(tokens) <= :room")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_names("#ttl", "ttl")
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew);
        for (name, value) in values {
            request = request.expression_attribute_values(name, value);
        }
        match request.send().await {
            Ok(out) => {
                let item = out.attributes.unwrap_or_default();
                Session::try_from(from_item::<SessionRecord>(item)?).map(Some)
            }
            Err(e) if is_condition_failure(&e) => Ok(None),
            Err(e) => Err(StorageError::from_sdk(e)),
        }
    }

    /// The wallet's session, expired or not (callers compare `expires_at`).
    pub async fn session(
        &self,
        chain_id: u64,
        owner: &Address,
    ) -> Result<Option<Session>, StorageError> {
        self.get::<SessionRecord, Session>(keys::session_pk(chain_id), keys::session_sk(owner))
            .await
    }

    /// Pushes a live session's expiry forward (an open stream keeps it alive). Returns `false`
    /// when the session is gone or has already expired: the stream must end.
    pub async fn keep_session_alive(
        &self,
        chain_id: u64,
        owner: &Address,
        now: u64,
        expires_at: u64,
    ) -> Result<bool, StorageError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.name)
            .key("pk", s(keys::session_pk(chain_id)))
            .key("sk", s(keys::session_sk(owner)))
            .update_expression("SET expires_at = :exp, #ttl = :exp")
            .condition_expression(
                "attribute_exists(pk) AND expires_at > :now AND expires_at < :exp",
            )
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":exp", n(expires_at))
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            // Gone, expired, or already kept alive further by another stream.
            Err(e) if is_condition_failure(&e) => Ok(self
                .session(chain_id, owner)
                .await?
                .is_some_and(|s| s.expires_at > now)),
            Err(e) => Err(StorageError::from_sdk(e)),
        }
    }

    /// Every session of a chain, expired ones included.
    pub async fn sessions(&self, chain_id: u64) -> Result<Vec<Session>, StorageError> {
        let items = self.query_all(keys::session_pk(chain_id), None).await?;
        items
            .into_iter()
            .map(|i| Session::try_from(from_item::<SessionRecord>(i)?))
            .collect()
    }

    /// Writes a value if it changed, and never over a value read at a later block — unless
    /// that later block is above `rewound_above`, i.e. on a branch a reorg dropped.
    ///
    /// An update of the item's own attributes, not a replacement: the token metadata the api
    /// stored beside the value survives the poller's writes.
    pub async fn put_balance(
        &self,
        item: &BalanceItem,
        now: u64,
        rewound_above: Option<u64>,
    ) -> Result<Written, StorageError> {
        let mut record = BalanceRecord::from(item);
        record.updated_at = now;
        self.update_balance(record, item, rewound_above).await
    }

    /// [`Self::put_balance`] of an initial value together with its token's metadata. The
    /// metadata is stored even when the value itself is unchanged (a poller wrote it first).
    pub async fn put_initial_balance(
        &self,
        item: &BalanceItem,
        metadata: Option<&TokenMetadata>,
        now: u64,
    ) -> Result<Written, StorageError> {
        let mut record = BalanceRecord::from(item);
        record.updated_at = now;
        let is_balance = matches!(item.key, crate::model::BalanceKey::Balance { .. });
        if let (Some(m), true) = (metadata, is_balance) {
            record.symbol = Some(m.symbol.clone());
            record.name = Some(m.name.clone());
            record.decimals = Some(m.decimals);
        }
        let has_metadata = record.symbol.is_some();
        let written = self.update_balance(record, item, None).await?;
        if let (Written::Skipped, true, Some(m)) = (written, has_metadata, metadata) {
            self.add_missing_metadata(item, m).await?;
        }
        Ok(written)
    }

    async fn update_balance(
        &self,
        record: BalanceRecord,
        item: &BalanceItem,
        rewound_above: Option<u64>,
    ) -> Result<Written, StorageError> {
        let mut attributes = to_item(record)?;
        attributes.remove("pk");
        attributes.remove("sk");
        let mut request = self
            .client
            .update_item()
            .table_name(&self.name)
            .key("pk", s(keys::balance_pk(item.chain_id, &item.owner)))
            .key("sk", s(keys::balance_sk(&item.key)))
            .condition_expression(
                "attribute_not_exists(pk) OR (#c_read <> :c_read AND (#c_block <= :c_block OR #c_block > :c_rewound))",
            )
            .expression_attribute_names("#c_read", "read")
            .expression_attribute_names("#c_block", "block")
            .expression_attribute_values(":c_read", s(read_text(&item.read)))
            .expression_attribute_values(":c_block", n(item.block))
            .expression_attribute_values(":c_rewound", n(rewound_above.unwrap_or(u64::MAX)));
        let mut sets = vec![];
        for (i, (name, value)) in attributes.into_iter().enumerate() {
            sets.push(format!("#a{i} = :a{i}"));
            request = request
                .expression_attribute_names(format!("#a{i}"), name)
                .expression_attribute_values(format!(":a{i}"), value);
        }
        // The poller's updates never name the metadata attributes, so they are not removed.
        let result = request
            .update_expression(format!("SET {} ADD #version :one", sets.join(", ")))
            .expression_attribute_names("#version", "version")
            .expression_attribute_values(":one", n(1))
            .send()
            .await;
        written(result)
    }

    /// Stores metadata on an existing balance item that has none. Its stream record shows an
    /// unchanged value, which the fanout ignores.
    async fn add_missing_metadata(
        &self,
        item: &BalanceItem,
        metadata: &TokenMetadata,
    ) -> Result<Written, StorageError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.name)
            .key("pk", s(keys::balance_pk(item.chain_id, &item.owner)))
            .key("sk", s(keys::balance_sk(&item.key)))
            .update_expression("SET symbol = :symbol, #name = :name, decimals = :decimals")
            .condition_expression("attribute_exists(pk) AND attribute_not_exists(decimals)")
            .expression_attribute_names("#name", "name")
            .expression_attribute_values(":symbol", s(&metadata.symbol))
            .expression_attribute_values(":name", s(&metadata.name))
            .expression_attribute_values(":decimals", n(metadata.decimals))
            .send()
            .await;
        written(result)
    }

    /// One tracked value of a wallet, if it is tracked.
    pub async fn balance(
        &self,
        chain_id: u64,
        owner: &Address,
        key: &crate::model::BalanceKey,
    ) -> Result<Option<BalanceItem>, StorageError> {
        self.get::<BalanceRecord, BalanceItem>(
            keys::balance_pk(chain_id, owner),
            keys::balance_sk(key),
        )
        .await
    }

    /// Every tracked value of a wallet (one consistent query).
    pub async fn balances(
        &self,
        chain_id: u64,
        owner: &Address,
    ) -> Result<Vec<BalanceItem>, StorageError> {
        let items = self
            .query_all(keys::balance_pk(chain_id, owner), None)
            .await?;
        items
            .into_iter()
            .map(|i| BalanceItem::try_from(from_item::<BalanceRecord>(i)?))
            .collect()
    }

    /// Every tracked value of a wallet with the metadata of its tokens (one consistent query).
    pub async fn wallet_values(
        &self,
        chain_id: u64,
        owner: &Address,
    ) -> Result<WalletValues, StorageError> {
        let items = self
            .query_all(keys::balance_pk(chain_id, owner), None)
            .await?;
        let mut values = WalletValues::default();
        for item in items {
            let record = from_item::<BalanceRecord>(item)?;
            let metadata = record.metadata();
            let version = record.version;
            let item = BalanceItem::try_from(record)?;
            values.versions.insert(item.key, version);
            if let Some(metadata) = metadata {
                values.metadata.insert(item.key.token(), metadata);
            }
            values.items.push(item);
        }
        Ok(values)
    }

    /// Appends an entry to the wallet's change feed. Idempotent: a stream record delivered
    /// twice has the same position and is written once.
    pub async fn append_feed(&self, entry: &FeedEntry, ttl: u64) -> Result<Written, StorageError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.name)
            .set_item(Some(to_item(FeedRecord::new(entry, ttl))?))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        written(result)
    }

    /// Feed entries after `after`, oldest first, at most `limit` (a consistent read, so an
    /// entry appended before the query is never missed).
    pub async fn feed_after(
        &self,
        chain_id: u64,
        owner: &Address,
        after: &FeedPosition,
        limit: i32,
    ) -> Result<Vec<FeedEntry>, StorageError> {
        let out = self
            .feed_after_query(chain_id, owner, after)
            .consistent_read(true)
            .limit(limit)
            .send()
            .await
            .map_err(StorageError::from_sdk)?;
        out.items
            .unwrap_or_default()
            .into_iter()
            .map(|i| FeedEntry::try_from(from_item::<FeedRecord>(i)?))
            .collect()
    }

    /// The query of a wallet's feed entries after `after`, oldest first.
    fn feed_after_query(
        &self,
        chain_id: u64,
        owner: &Address,
        after: &FeedPosition,
    ) -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder {
        self.client
            .query()
            .table_name(&self.name)
            .key_condition_expression("pk = :pk AND sk > :after")
            .expression_attribute_values(":pk", s(keys::feed_pk(chain_id, owner)))
            .expression_attribute_values(":after", s(after.as_str()))
    }

    /// Whether `position` is an entry still in the wallet's feed and not yet expired. Entries
    /// expire in the order they were written, so everything after a live entry is there too:
    /// a replay from it is complete.
    pub async fn feed_position_is_live(
        &self,
        chain_id: u64,
        owner: &Address,
        position: &FeedPosition,
        now: u64,
    ) -> Result<bool, StorageError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.name)
            .key("pk", s(keys::feed_pk(chain_id, owner)))
            .key("sk", s(position.as_str()))
            .projection_expression("#ttl")
            .expression_attribute_names("#ttl", "ttl")
            .consistent_read(true)
            .send()
            .await
            .map_err(StorageError::from_sdk)?;
        let ttl = out
            .item
            .as_ref()
            .and_then(|i| i.get("ttl"))
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse::<u64>().ok());
        Ok(ttl.is_some_and(|ttl| ttl > now))
    }

    /// The newest position in the wallet's feed, or the start when it is empty.
    pub async fn latest_feed_position(
        &self,
        chain_id: u64,
        owner: &Address,
    ) -> Result<FeedPosition, StorageError> {
        let out = self
            .client
            .query()
            .table_name(&self.name)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(keys::feed_pk(chain_id, owner)))
            .projection_expression("sk")
            .scan_index_forward(false)
            .consistent_read(true)
            .limit(1)
            .send()
            .await
            .map_err(StorageError::from_sdk)?;
        let latest = out.items.unwrap_or_default().into_iter().next();
        match latest
            .as_ref()
            .and_then(|i| i.get("sk"))
            .and_then(|v| v.as_s().ok())
        {
            Some(sk) => FeedPosition::parse(sk).map_err(|e| StorageError::corrupt(sk.clone(), e)),
            None => Ok(FeedPosition::start()),
        }
    }

    pub async fn cursor(&self, chain_id: u64) -> Result<Option<ChainCursor>, StorageError> {
        self.get::<CursorRecord, ChainCursor>(keys::cursor_pk(chain_id), keys::CURSOR_SK)
            .await
    }

    pub async fn put_cursor(&self, cursor: &ChainCursor) -> Result<(), StorageError> {
        self.put(CursorRecord::from(cursor)).await
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
            .client
            .get_item()
            .table_name(&self.name)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(StorageError::from_sdk)?;
        out.item
            .map(|i| T::try_from(from_item::<R>(i)?))
            .transpose()
    }

    async fn query_all(&self, pk: String, limit: Option<i32>) -> Result<Vec<Item>, StorageError> {
        let mut items = vec![];
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.name)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(pk.clone()))
                .consistent_read(true)
                .set_limit(limit)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(StorageError::from_sdk)?;
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(items),
            }
        }
    }
}
