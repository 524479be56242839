//! Open-stream slots (`N#…` / `{slot}`): a cap on the streams open at once from one source or
//! on one wallet that holds across every container (function instances share nothing else).
//! A partition has `max` numbered slots; a stream holds one by a lease it renews while it runs
//! and gives back when it ends, so a stream whose instance died frees its slot when the lease
//! runs out. Claiming is a conditional write on the slot's number, so the cap is exact however
//! many streams open at once.

use aws_sdk_dynamodb::types::AttributeValue;

use super::keys::{self, StreamSlots};
use super::{StorageError, Table, Written, n, s, written};

/// A slot held by one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotLease {
    pub pk: String,
    pub slot: u32,
    /// The holder's random id: only it renews or gives back the slot.
    pub holder: String,
}

impl Table {
    /// Takes a free slot of `slots` (one of `max`) for `holder` until `until` (Unix seconds);
    /// `None` when all `max` are held by leases running past `now`.
    pub async fn claim_stream_slot(
        &self,
        slots: StreamSlots<'_>,
        max: u32,
        holder: &str,
        now: u64,
        until: u64,
    ) -> Result<Option<SlotLease>, StorageError> {
        let pk = keys::stream_slots_pk(slots);
        // Another stream may take a slot between the read and the write: then the next free
        // one is tried, and the read repeated once the list is used up.
        // Streams opening at once start at different free slots (by their random holder id),
        // so they rarely race for the same one.
        let spread = u32::from_str_radix(holder.get(..8).unwrap_or("0"), 16).unwrap_or(0);
        for _ in 0..3 {
            let held = self.held_slots(&pk, now).await?;
            let mut free: Vec<u32> = (0..max).filter(|slot| !held.contains(slot)).collect();
            if free.is_empty() {
                return Ok(None);
            }
            let start = spread as usize % free.len();
            free.rotate_left(start);
            for slot in free {
                // A passing outage is ridden out (the table retry rule); a claim whose answer
                // was lost and is retried finds its own slot taken and takes the next (the first
                // is freed when its lease runs out).
                let claimed = super::retry::with_retry(
                    || async {
                        let result = self
                            .client
                            .put_item()
                            .table_name(&self.name)
                            .item("pk", s(pk.clone()))
                            .item("sk", s(slot.to_string()))
                            .item("holder", s(holder))
                            .item("until", n(until))
                            .item("ttl", n(until + 3600))
                            .condition_expression("attribute_not_exists(pk) OR #until < :now")
                            .expression_attribute_names("#until", "until")
                            .expression_attribute_values(":now", n(now))
                            .send()
                            .await;
                        written(result)
                    },
                    |attempt, error| tracing::debug!(slots = %pk, attempt, error, "stream slot claim retried"),
                )
                .await?;
                if claimed == Written::Yes {
                    return Ok(Some(SlotLease {
                        pk,
                        slot,
                        holder: holder.to_string(),
                    }));
                }
            }
        }
        Ok(None)
    }

    /// The slot numbers of `pk` whose leases run past `now`.
    async fn held_slots(&self, pk: &str, now: u64) -> Result<Vec<u32>, StorageError> {
        let items = self
            .query_items(
                self.query("pk = :pk", pk.to_string())
                    .consistent_read(true)
                    .projection_expression("sk, #until")
                    .expression_attribute_names("#until", "until"),
            )
            .await?;
        Ok(items
            .iter()
            .filter(|i| number(i.get("until")) >= now)
            .filter_map(|i| i.get("sk")?.as_s().ok()?.parse().ok())
            .collect())
    }

    /// Renews a lease until `until`; `Skipped` when the slot is no longer the holder's (its
    /// lease ran out and another stream took it).
    pub async fn renew_stream_slot(
        &self,
        lease: &SlotLease,
        until: u64,
    ) -> Result<Written, StorageError> {
        let result = self
            .update(lease.pk.clone(), lease.slot.to_string())
            .update_expression("SET #until = :until, #ttl = :ttl")
            .condition_expression("holder = :holder")
            .expression_attribute_names("#until", "until")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":until", n(until))
            .expression_attribute_values(":ttl", n(until + 3600))
            .expression_attribute_values(":holder", s(&lease.holder))
            .send()
            .await;
        written(result)
    }

    /// Gives a slot back (unless another stream holds it by now).
    pub async fn release_stream_slot(&self, lease: &SlotLease) -> Result<Written, StorageError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.name)
            .key("pk", s(lease.pk.clone()))
            .key("sk", s(lease.slot.to_string()))
            .condition_expression("holder = :holder")
            .expression_attribute_values(":holder", s(&lease.holder))
            .send()
            .await;
        written(result)
    }
}

fn number(value: Option<&AttributeValue>) -> u64 {
    value
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
