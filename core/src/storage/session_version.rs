//! The per-chain signal item (`V#{chain}` / `SESSIONS`) the poller reads once per block instead
//! of every session: a version bumped whenever a session is created or grows (or a list it
//! follows changes), the wallets whose streams asked for a background re-read, and the live
//! session count the poller last saw.

use std::collections::BTreeSet;

use alloy::primitives::Address;
use aws_sdk_dynamodb::types::AttributeValue;

use super::{StorageError, Table, keys, n, s};
use crate::address::{lower, parse_address};

const SK: &str = "SESSIONS";

/// What the poller learns from the signal item each block.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionsSignal {
    /// 0 before any session was ever added.
    pub version: u64,
    /// Wallets waiting for a re-read of their whole token set.
    pub rescans: BTreeSet<Address>,
}

impl Table {
    /// Marks the chain's sessions as changed.
    pub async fn bump_sessions_version(&self, chain_id: u64) -> Result<(), StorageError> {
        self.update(keys::version_pk(chain_id), SK)
            .update_expression("ADD version :one")
            .expression_attribute_values(":one", n(1))
            .send()
            .await
            .map_err(StorageError::from_sdk)?;
        Ok(())
    }

    /// The chain's sessions version and pending re-reads, in one consistent read.
    pub async fn sessions_signal(&self, chain_id: u64) -> Result<SessionsSignal, StorageError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.name)
            .key("pk", s(keys::version_pk(chain_id)))
            .key("sk", s(SK))
            .projection_expression("#version, #rescans")
            .expression_attribute_names("#version", "version")
            .expression_attribute_names("#rescans", "rescans")
            .consistent_read(true)
            .send()
            .await
            .map_err(StorageError::from_sdk)?;
        let item = out.item.unwrap_or_default();
        let version = item
            .get("version")
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let rescans = match item.get("rescans") {
            Some(AttributeValue::Ss(owners)) => owners
                .iter()
                .map(|o| {
                    parse_address(o)
                        .map_err(|e| StorageError::corrupt(keys::version_pk(chain_id), e))
                })
                .collect::<Result<_, _>>()?,
            _ => BTreeSet::new(),
        };
        Ok(SessionsSignal { version, rescans })
    }

    /// Queues a re-read of the wallet's whole token set for the poller.
    pub(crate) async fn add_rescan(
        &self,
        chain_id: u64,
        owner: &Address,
    ) -> Result<(), StorageError> {
        self.update(keys::version_pk(chain_id), SK)
            .update_expression("ADD #rescans :owner")
            .expression_attribute_names("#rescans", "rescans")
            .expression_attribute_values(":owner", AttributeValue::Ss(vec![lower(owner)]))
            .send()
            .await
            .map_err(StorageError::from_sdk)?;
        Ok(())
    }

    /// Removes re-reads the poller has done (only those: requests added meanwhile stay).
    pub async fn take_rescans(
        &self,
        chain_id: u64,
        owners: &BTreeSet<Address>,
    ) -> Result<(), StorageError> {
        if owners.is_empty() {
            return Ok(());
        }
        self.update(keys::version_pk(chain_id), SK)
            .update_expression("DELETE #rescans :owners")
            .expression_attribute_names("#rescans", "rescans")
            .expression_attribute_values(
                ":owners",
                AttributeValue::Ss(owners.iter().map(lower).collect()),
            )
            .send()
            .await
            .map_err(StorageError::from_sdk)?;
        Ok(())
    }

    /// Records how many live sessions the poller watches on the chain (on each full reload).
    pub async fn set_live_sessions(&self, chain_id: u64, live: u64) -> Result<(), StorageError> {
        self.update(keys::version_pk(chain_id), SK)
            .update_expression("SET live = :live")
            .expression_attribute_values(":live", n(live))
            .send()
            .await
            .map_err(StorageError::from_sdk)?;
        Ok(())
    }

    /// Live sessions on the chain as the poller last counted them (0 before it did).
    pub async fn live_sessions(&self, chain_id: u64) -> Result<u64, StorageError> {
        self.number(keys::version_pk(chain_id), SK, "live").await
    }

    /// The chain's sessions version: 0 before any session was ever added.
    pub async fn sessions_version(&self, chain_id: u64) -> Result<u64, StorageError> {
        self.number(keys::version_pk(chain_id), SK, "version").await
    }
}
