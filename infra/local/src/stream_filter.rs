//! The filter criteria of a function's event source mapping (`FilterCriteria` in
//! `template.yaml`), applied by the local pump as Lambda applies them: a record reaches the
//! function only when one of the patterns matches it, so a function is tested on the records
//! it gets in AWS and no others. The patterns are kept in `infra/local/stream-filters.json`;
//! `make template-check` proves they are the template's.
//!
//! The subset of Lambda's pattern syntax the template uses: an object matches when each of its
//! fields matches the record's field of that name; an array matches when one of its values
//! does — a literal equal to the field, or `{"prefix": …}` that a string field starts with. A
//! pattern using any other rule is refused rather than applied wrongly.

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
                    let pattern =
                        serde_json::from_str(text).with_context(|| format!("pattern {text}"))?;
                    supported(&pattern).with_context(|| format!("pattern {text}"))?;
                    Ok(pattern)
                })
                .collect()
        })
        .unwrap_or_else(|| Ok(vec![]))
}

/// Refuses a pattern using what [`matches`] does not apply (an operator other than `prefix`,
/// such as `anything-but` or `exists`): it would silently match nothing here.
fn supported(pattern: &Value) -> anyhow::Result<()> {
    match pattern {
        Value::Object(fields) => fields.values().try_for_each(supported),
        Value::Array(options) => options.iter().try_for_each(|option| match option {
            Value::Object(rule) => match rule.iter().next() {
                Some((name, Value::String(_))) if name == "prefix" && rule.len() == 1 => Ok(()),
                _ => anyhow::bail!("the local pump applies no filter rule {option}"),
            },
            Value::Array(_) => anyhow::bail!("a nested array is not a filter rule"),
            _ => Ok(()),
        }),
        _ => Ok(()),
    }
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

    #[test]
    fn a_rule_the_pump_does_not_apply_is_refused() {
        let ok = json!({"dynamodb": {"Keys": {"pk": {"S": [{"prefix": "B#"}, "C#1"]}}}});
        assert!(supported(&ok).is_ok());
        for rule in [
            json!({"anything-but": "B#"}),
            json!({"exists": true}),
            json!({"prefix": 1}),
        ] {
            let pattern = json!({"dynamodb": {"Keys": {"pk": {"S": [rule]}}}});
            assert!(supported(&pattern).is_err(), "{pattern}");
        }
    }
}
