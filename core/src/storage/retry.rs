//! One table request retried while DynamoDB is unavailable or throttling, beyond the SDK's own
//! attempts: the one rule for every writer that must ride out a passing outage rather than
//! give up the work around the request (the fanout's appends, the poller's value and cursor
//! writes). Pauses follow the project's one backoff.

use std::time::Duration;

use super::StorageError;
use crate::runtime::backoff::Backoff;

/// Attempts at one request before its error is returned.
pub const ATTEMPTS: u32 = 5;
/// Pauses between attempts: 100 ms before the second, doubled for each further one (1.5 s in
/// all).
pub const WRITE_BACKOFF: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));

/// The attempts at one request: every retry waits by [`WRITE_BACKOFF`].
#[derive(Debug)]
pub struct Retries {
    /// The attempt under way, from 1.
    pub attempt: u32,
}

impl Retries {
    pub fn new() -> Self {
        Self { attempt: 1 }
    }

    /// Waits before the next attempt; `false` (no wait) when the attempts are used up.
    pub async fn wait(&mut self) -> bool {
        if self.attempt >= ATTEMPTS {
            return false;
        }
        tokio::time::sleep(WRITE_BACKOFF.pause(self.attempt - 1)).await;
        self.attempt += 1;
        true
    }
}

impl Default for Retries {
    fn default() -> Self {
        Self::new()
    }
}

/// Runs `request` until it succeeds, fails for another reason than
/// [`StorageError::Unavailable`], or its attempts are used up; `on_retry(attempt, error)` is
/// told of each failure it retries (the caller logs it with its own fields).
pub async fn with_retry<T, F, Fut>(
    mut request: F,
    mut on_retry: impl FnMut(u32, &str),
) -> Result<T, StorageError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StorageError>>,
{
    let mut retries = Retries::new();
    loop {
        match request().await {
            Err(StorageError::Unavailable(error)) => {
                on_retry(retries.attempt, &error);
                if !retries.wait().await {
                    return Err(StorageError::Unavailable(error));
                }
            }
            outcome => return outcome,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_outage_is_retried_and_a_refusal_is_not() {
        let mut calls = 0;
        let outcome = with_retry(
            || {
                calls += 1;
                let fail = calls < 3;
                async move {
                    if fail {
                        Err(StorageError::Unavailable("throttled".into()))
                    } else {
                        Ok(calls)
                    }
                }
            },
            |_, _| {},
        )
        .await;
        assert_eq!(outcome.ok(), Some(3));

        let mut seen = vec![];
        let outcome: Result<(), _> = with_retry(
            || async { Err(StorageError::Unavailable("down".into())) },
            |attempt, _| seen.push(attempt),
        )
        .await;
        assert!(matches!(outcome, Err(StorageError::Unavailable(_))));
        assert_eq!(seen, [1, 2, 3, 4, 5], "every attempt told, then given up");

        let mut calls = 0;
        let outcome: Result<(), _> = with_retry(
            || {
                calls += 1;
                async { Err(StorageError::Refused("no table".into())) }
            },
            |_, _| {},
        )
        .await;
        assert!(matches!(outcome, Err(StorageError::Refused(_))));
        assert_eq!(calls, 1, "a refusal is not retried");
    }
}
