//! Errors of the storage adapter.

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use thiserror::Error;

/// DynamoDB error codes that say "not now" rather than "not this request".
const TRANSIENT_CODES: [&str; 6] = [
    "ThrottlingException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
    "TransactionConflictException",
];

#[derive(Debug, Error)]
pub enum StorageError {
    /// DynamoDB could not be reached, timed out, throttled or failed on its side: the same
    /// request may succeed later.
    #[error("DynamoDB request failed: {0}")]
    Unavailable(String),
    /// DynamoDB refused the request itself (validation, permissions, a missing table):
    /// retrying cannot help; the deployment or the code is wrong.
    #[error("DynamoDB refused the request: {0}")]
    Refused(String),
    /// An item in the table does not decode: written by something else, or a bug.
    #[error("item {key} is malformed: {reason}")]
    Corrupt { key: String, reason: String },
}

impl StorageError {
    pub(crate) fn unavailable(err: impl std::fmt::Display) -> Self {
        Self::Unavailable(err.to_string())
    }

    /// A request that could not even be built: a bug, not an outage.
    pub(crate) fn refused(err: impl std::fmt::Display) -> Self {
        Self::Refused(err.to_string())
    }

    /// An SDK error, as transient or refused by its code; the message keeps the whole chain
    /// of causes (an SDK error's own text is only "service error").
    pub(crate) fn from_sdk<E, R>(err: SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug + Send + Sync + 'static,
    {
        let refused = err
            .as_service_error()
            .and_then(ProvideErrorMetadata::code)
            .is_some_and(|code| !TRANSIENT_CODES.contains(&code));
        let text = DisplayErrorContext(&err).to_string();
        if refused {
            Self::Refused(text)
        } else {
            Self::Unavailable(text)
        }
    }

    pub(crate) fn corrupt(key: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        Self::Corrupt {
            key: key.into(),
            reason: reason.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::error::ErrorMetadata;
    use aws_sdk_dynamodb::operation::put_item::PutItemError;

    use super::*;

    fn service_error(code: &str) -> StorageError {
        let err = PutItemError::generic(ErrorMetadata::builder().code(code).build());
        StorageError::from_sdk(SdkError::<PutItemError, ()>::service_error(err, ()))
    }

    #[test]
    fn throttling_and_server_errors_are_transient_the_rest_refused() {
        for code in TRANSIENT_CODES {
            assert!(
                matches!(service_error(code), StorageError::Unavailable(_)),
                "{code}"
            );
        }
        for code in [
            "ValidationException",
            "AccessDeniedException",
            "ResourceNotFoundException",
        ] {
            assert!(
                matches!(service_error(code), StorageError::Refused(_)),
                "{code}"
            );
        }
        let timeout = SdkError::<PutItemError, ()>::timeout_error("no answer");
        assert!(matches!(
            StorageError::from_sdk(timeout),
            StorageError::Unavailable(_)
        ));
    }
}
