//! A table change as a DynamoDB stream record in the shape Lambda delivers it: what the
//! functions' tests and the end-to-end tests hand the fanout and the webhooks function in
//! place of the stream (the local stack's pump builds the same shape from the stream itself).

use serde_json::{Value, json};

/// The record of a write that left `new` (an item in DynamoDB JSON, keyed by its `pk` and
/// `sk`) where `old` stood (`None`: an insert), at `sequence` in its shard (`None`: a record
/// without one, which Lambda never sends), made at `created_at` (seconds): one element of a
/// `DynamoDBEvent`'s `Records`. Its event id is its sequence number.
pub fn stream_record(
    new: Value,
    old: Option<Value>,
    sequence: Option<&str>,
    created_at: u64,
) -> Value {
    let mut change = json!({
        "ApproximateCreationDateTime": created_at,
        "Keys": { "pk": new["pk"].clone(), "sk": new["sk"].clone() },
        "NewImage": new,
        "SizeBytes": 100,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    });
    let name = match old {
        Some(old) => {
            change["OldImage"] = old;
            "MODIFY"
        }
        None => "INSERT",
    };
    if let Some(sequence) = sequence {
        change["SequenceNumber"] = json!(sequence);
    }
    json!({
        "eventID": sequence.unwrap_or("1"),
        "eventName": name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": change,
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:000000000000:table/live-balances/stream/local",
    })
}
