//! Errors of the storage adapter.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum StorageError {
    /// DynamoDB could not be reached or refused the request (throttling included).
    #[error("DynamoDB request failed: {0}")]
    Unavailable(String),
    /// An item in the table does not decode: written by something else, or a bug.
    #[error("item {key} is malformed: {reason}")]
    Corrupt { key: String, reason: String },
}

impl StorageError {
    pub(crate) fn unavailable(err: impl std::fmt::Display) -> Self {
        Self::Unavailable(err.to_string())
    }

    pub(crate) fn corrupt(key: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        Self::Corrupt {
            key: key.into(),
            reason: reason.to_string(),
        }
    }
}
