//! What the fanout reports (the scheme is core's `telemetry`): stream records received, feed
//! entries written by chain, and failures by kind (`record`: a record failed and the batch is
//! retried from it; `change_log`: the chain's change log was not appended).

use metrics::counter;

pub fn records(count: usize) {
    counter!("fanout_records_total").increment(count as u64);
}

pub fn feed_entry_written(chain_id: u64) {
    counter!("fanout_feed_entries_written_total", "chain" => chain_id.to_string()).increment(1);
}

pub fn failed(kind: &'static str) {
    counter!("fanout_failures_total", "kind" => kind).increment(1);
}
