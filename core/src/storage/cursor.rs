//! The per-chain cursor (`C#{chain}` / `CURSOR`): the block the poller processed last, and
//! its heartbeat (the api's health reads how old it is).

use super::records::CursorRecord;
use super::{StorageError, Table, keys};
use crate::domain::model::ChainCursor;

impl Table {
    pub async fn cursor(&self, chain_id: u64) -> Result<Option<ChainCursor>, StorageError> {
        self.get::<CursorRecord, ChainCursor>(keys::cursor_pk(chain_id), keys::CURSOR_SK)
            .await
    }

    pub async fn put_cursor(&self, cursor: &ChainCursor) -> Result<(), StorageError> {
        self.put(CursorRecord::from(cursor)).await
    }
}
