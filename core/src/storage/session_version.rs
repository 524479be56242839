//! A per-chain counter bumped whenever a session is created or grows, so the poller can tell
//! with one small read per block whether it must reload the chain's sessions, instead of
//! querying every session every block.

use super::{StorageError, Table, keys, n, s};

const SK: &str = "SESSIONS";

impl Table {
    /// Marks the chain's sessions as changed.
    pub async fn bump_sessions_version(&self, chain_id: u64) -> Result<(), StorageError> {
        self.client
            .update_item()
            .table_name(&self.name)
            .key("pk", s(keys::version_pk(chain_id)))
            .key("sk", s(SK))
            .update_expression("ADD version :one")
            .expression_attribute_values(":one", n(1))
            .send()
            .await
            .map_err(StorageError::from_sdk)?;
        Ok(())
    }

    /// The chain's sessions version: 0 before any session was ever added.
    pub async fn sessions_version(&self, chain_id: u64) -> Result<u64, StorageError> {
        self.version_attribute(chain_id, "version").await
    }

    /// A number on the chain's version item (0 when absent), read consistently.
    async fn version_attribute(&self, chain_id: u64, name: &str) -> Result<u64, StorageError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.name)
            .key("pk", s(keys::version_pk(chain_id)))
            .key("sk", s(SK))
            .projection_expression("#attr")
            .expression_attribute_names("#attr", name)
            .consistent_read(true)
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
}

impl Table {
    /// Records how many live sessions the poller watches on the chain (on each full reload).
    pub async fn set_live_sessions(&self, chain_id: u64, live: u64) -> Result<(), StorageError> {
        self.client
            .update_item()
            .table_name(&self.name)
            .key("pk", s(keys::version_pk(chain_id)))
            .key("sk", s(SK))
            .update_expression("SET live = :live")
            .expression_attribute_values(":live", n(live))
            .send()
            .await
            .map_err(StorageError::from_sdk)?;
        Ok(())
    }

    /// Live sessions on the chain as the poller last counted them (0 before it did).
    pub async fn live_sessions(&self, chain_id: u64) -> Result<u64, StorageError> {
        self.version_attribute(chain_id, "live").await
    }
}
