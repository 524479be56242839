//! The KMS-wrapped data keys that seal webhook secrets (`A#SEALING` / `{key id}`): the table
//! holds a data key only as KMS encrypted it, so reading the table (or a backup of it) gives
//! nothing without the right to decrypt with that KMS key — which the poller's role lacks.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::{StorageError, Table, Written, keys, s, written};

impl Table {
    /// The wrapped data key `id`, if one was stored.
    pub async fn wrapped_data_key(&self, id: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let out = self
            .read_item(keys::SEALING_PK.into(), id)
            .send()
            .await
            .map_err(StorageError::from_sdk)?;
        out.item
            .and_then(|item| item.get("wrapped").and_then(|v| v.as_s().ok()).cloned())
            .map(|text| {
                STANDARD
                    .decode(text)
                    .map_err(|e| StorageError::corrupt(format!("{}/{id}", keys::SEALING_PK), e))
            })
            .transpose()
    }

    /// Stores the wrapped data key `id` unless one is stored already (another container made
    /// its own first: `Skipped`, and that one is used).
    pub async fn store_wrapped_data_key(
        &self,
        id: &str,
        wrapped: &[u8],
    ) -> Result<Written, StorageError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.name)
            .item("pk", s(keys::SEALING_PK))
            .item("sk", s(id))
            .item("wrapped", s(STANDARD.encode(wrapped)))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        written(result)
    }
}
