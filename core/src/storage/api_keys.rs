//! API keys in the table (`A#KEYS` / `{sha256 of the key}`): one partition, so the command
//! lists every key with one query and the api finds one with one read. The key itself is never
//! stored. Tenants' webhook counts (`A#TENANTS` / `{tenant}`) are kept beside them, written in
//! the transactions that create and delete subscriptions (`webhooks.rs`).

use serde::{Deserialize, Serialize};

use super::{StorageError, Table, Written, from_item, keys, n, to_item, written};
use crate::domain::api_key::{ApiKey, KeyHash, Quotas, Tenant};

#[derive(Debug, Serialize, Deserialize)]
struct ApiKeyRecord {
    pk: String,
    sk: String,
    tenant: String,
    requests_per_minute: u64,
    max_webhooks: u64,
    created_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    revoked_at: Option<u64>,
}

impl From<&ApiKey> for ApiKeyRecord {
    fn from(key: &ApiKey) -> Self {
        Self {
            pk: keys::API_KEYS_PK.into(),
            sk: key.hash.as_str().into(),
            tenant: key.tenant.to_string(),
            requests_per_minute: key.quotas.requests_per_minute,
            max_webhooks: key.quotas.max_webhooks,
            created_at: key.created_at,
            revoked_at: key.revoked_at,
        }
    }
}

impl TryFrom<ApiKeyRecord> for ApiKey {
    type Error = StorageError;

    fn try_from(r: ApiKeyRecord) -> Result<Self, StorageError> {
        let key = format!("{}/{}", r.pk, r.sk);
        Ok(ApiKey {
            hash: KeyHash::parse(&r.sk).ok_or_else(|| StorageError::corrupt(&key, "hash"))?,
            tenant: Tenant::parse(&r.tenant).map_err(|e| StorageError::corrupt(&key, e))?,
            quotas: Quotas {
                requests_per_minute: r.requests_per_minute,
                max_webhooks: r.max_webhooks,
            },
            created_at: r.created_at,
            revoked_at: r.revoked_at,
        })
    }
}

impl Table {
    /// Stores a newly issued key (never over another: the hash of 32 random bytes is new).
    pub async fn create_api_key(&self, key: &ApiKey) -> Result<(), StorageError> {
        self.client
            .put_item()
            .table_name(&self.name)
            .set_item(Some(to_item(ApiKeyRecord::from(key))?))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(StorageError::from_sdk)?;
        Ok(())
    }

    /// The key with this hash, revoked or not (a consistent read: a revocation holds at once).
    pub async fn api_key(&self, hash: &KeyHash) -> Result<Option<ApiKey>, StorageError> {
        self.get::<ApiKeyRecord, ApiKey>(keys::API_KEYS_PK.into(), hash.as_str())
            .await
    }

    /// Every key ever issued, revoked ones included.
    pub async fn api_keys(&self) -> Result<Vec<ApiKey>, StorageError> {
        self.query_all(keys::API_KEYS_PK.into())
            .await?
            .into_iter()
            .map(|item| ApiKey::try_from(from_item::<ApiKeyRecord>(item)?))
            .collect()
    }

    /// Revokes the key stored under `hash` at `now`; `Skipped` when there is none or it was
    /// revoked already.
    pub async fn revoke_api_key(&self, hash: &KeyHash, now: u64) -> Result<Written, StorageError> {
        let result = self
            .update(keys::API_KEYS_PK.into(), hash.as_str())
            .update_expression("SET revoked_at = :now")
            .condition_expression("attribute_exists(pk) AND attribute_not_exists(revoked_at)")
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        written(result)
    }
}
