//! The filter criteria of a function's event source mapping (`FilterCriteria` in
//! `template.yaml`), applied by the local pump as Lambda applies them: a record reaches the
//! function only when one of the patterns matches it, so a function is tested on the records
//! it gets in AWS and no others. The patterns are kept in `infra/local/stream-filters.json`;
//! `make template-check` proves they are the template's.
//!
//! The subset of Lambda's pattern syntax the template uses: an object matches when each of its
//! fields matches the record's field of that name; an array matches when one of its values
//! does — a literal equal to the field, or `{"prefix": …}` that a string field starts with.

use anyhow::Context;
use serde_json::Value;

/// Every function's patterns, as `template.yaml` writes them.
const PATTERNS: &str = include_str!("../stream-filters.json");

/// The patterns of `function`'s event source mapping (none: every record passes).
pub fn patterns_of(function: &str) -> anyhow::Result<Vec<Value>> {
    let all: Value = serde_json::from_str(PATTERNS).context("stream-filters.json")?;
    all.get(function)
        .and_then(Value::as_array)
        .map(|patterns| {
            patterns
                .iter()
                .map(|p| {
                    let text = p.as_str().context("a pattern is a string")?;
                    serde_json::from_str(text).with_context(|| format!("pattern {text}"))
                })
                .collect()
        })
        .unwrap_or_else(|| Ok(vec![]))
}

/// Whether `record` (in the shape Lambda delivers it) reaches a function with `patterns`.
pub fn passes(record: &Value, patterns: &[Value]) -> bool {
    patterns.is_empty() || patterns.iter().any(|p| matches(p, record))
}

fn matches(pattern: &Value, value: &Value) -> bool {
    match pattern {
        Value::Object(fields) => fields
            .iter()
            .all(|(name, wanted)| value.get(name).is_some_and(|v| matches(wanted, v))),
        Value::Array(options) => options.iter().any(|option| match option {
            Value::Object(rule) => rule
                .get("prefix")
                .and_then(Value::as_str)
                .is_some_and(|prefix| value.as_str().is_some_and(|v| v.starts_with(prefix))),
            literal => literal == value,
        }),
        literal => literal == value,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn record(event: &str, pk: &str) -> Value {
        json!({
            "eventName": event,
            "dynamodb": { "Keys": { "pk": { "S": pk }, "sk": { "S": "x" } } },
        })
    }

    #[test]
    fn the_fanout_gets_value_partitions_only() -> anyhow::Result<()> {
        let fanout = patterns_of("fanout")?;
        assert!(passes(&record("INSERT", "B#1#0xab"), &fanout));
        assert!(passes(&record("MODIFY", "B#1#0xab"), &fanout));
        assert!(passes(&record("REMOVE", "B#1#0xab"), &fanout));
        for other in ["S#1", "F#1#0xab", "C#1", "Q#1#0"] {
            assert!(!passes(&record("INSERT", other), &fanout), "{other}");
        }
        Ok(())
    }

    #[test]
    fn the_webhooks_function_gets_new_feed_entries_and_subscription_changes() -> anyhow::Result<()>
    {
        let webhooks = patterns_of("webhooks")?;
        assert!(passes(&record("INSERT", "F#1#0xab"), &webhooks));
        assert!(!passes(&record("MODIFY", "F#1#0xab"), &webhooks));
        assert!(passes(&record("MODIFY", "H#0xab"), &webhooks));
        assert!(!passes(&record("INSERT", "H#0xab"), &webhooks));
        assert!(!passes(&record("INSERT", "B#1#0xab"), &webhooks));
        // A record without the fields a pattern names does not match.
        assert!(!passes(&json!({"eventName": "INSERT"}), &webhooks));
        // A function without patterns gets everything.
        assert!(passes(&record("INSERT", "S#1"), &patterns_of("api")?));
        Ok(())
    }
}
