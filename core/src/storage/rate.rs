//! Fixed-window request counters in the table: shared by every Lambda container, so a limit
//! holds however many instances a flood spins up. A count rides out a passing outage by the
//! one table retry rule (`retry.rs`): an admission is not refused for the table's hiccup.

use super::keys::{self, RateWindow};
use super::{StorageError, Table, Written, n, written};

impl Table {
    /// Counts one use of `counted` in the window starting at `window_start`; `false` (nothing
    /// counted) when that window already holds `limit` uses. Windows expire by TTL.
    pub async fn take_from_window(
        &self,
        counted: RateWindow<'_>,
        window_start: u64,
        window_secs: u64,
        limit: u64,
    ) -> Result<bool, StorageError> {
        let pk = keys::rate_pk(counted);
        let taken = super::retry::with_retry(
            || async {
                let result = self
                    .update(pk.clone(), window_start.to_string())
                    .update_expression("ADD hits :one SET #ttl = if_not_exists(#ttl, :ttl)")
                    .condition_expression("attribute_not_exists(hits) OR hits < :limit")
                    .expression_attribute_names("#ttl", "ttl")
                    .expression_attribute_values(":one", n(1))
                    .expression_attribute_values(":limit", n(limit))
                    .expression_attribute_values(":ttl", n(window_start + window_secs + 60))
                    .send()
                    .await;
                written(result)
            },
            |attempt, error| tracing::debug!(window = %pk, attempt, error, "rate window count retried"),
        )
        .await?;
        Ok(taken == Written::Yes)
    }
}
