//! The stored size of a table item by DynamoDB's rules (attribute names plus values, 3 bytes a
//! list or map and 1 byte an element), read raw from the table: what a session item costs to
//! write and to list, whatever the model's types say.

use alloy::primitives::Address;
use aws_sdk_dynamodb::types::AttributeValue;
use live_balances::storage::keys;

use crate::context::Bench;

/// The session item of `owner` on the bench's chain, in bytes; `None` when there is none.
pub async fn session_item_bytes(bench: &Bench, owner: &Address) -> anyhow::Result<Option<usize>> {
    let table = bench.env.stack.table().await;
    let item = table
        .client()
        .get_item()
        .table_name(table.name())
        .key("pk", AttributeValue::S(keys::session_pk(bench.chain_id())))
        .key("sk", AttributeValue::S(keys::session_sk(owner)))
        .consistent_read(true)
        .send()
        .await?
        .item;
    Ok(item.map(|attributes| {
        attributes
            .iter()
            .map(|(name, value)| name.len() + value_bytes(value))
            .sum()
    }))
}

/// A number takes about one byte per two significant digits, plus one.
fn number_bytes(n: &str) -> usize {
    let digits = n.chars().filter(char::is_ascii_digit).count();
    digits.div_ceil(2) + 1
}

fn value_bytes(value: &AttributeValue) -> usize {
    match value {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => number_bytes(n),
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Ss(v) => v.iter().map(String::len).sum(),
        AttributeValue::Ns(v) => v.iter().map(|n| number_bytes(n)).sum(),
        AttributeValue::Bs(v) => v.iter().map(|b| b.as_ref().len()).sum(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::L(v) => 3 + v.iter().map(|e| 1 + value_bytes(e)).sum::<usize>(),
        AttributeValue::M(m) => {
            3 + m
                .iter()
                .map(|(k, e)| 1 + k.len() + value_bytes(e))
                .sum::<usize>()
        }
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_dynamodb_rules() {
        assert_eq!(value_bytes(&AttributeValue::S("abc".into())), 3);
        assert_eq!(value_bytes(&AttributeValue::N("12345".into())), 4);
        let map = AttributeValue::M([("k".to_string(), AttributeValue::S("vv".into()))].into());
        assert_eq!(value_bytes(&map), 3 + 1 + 1 + 2);
        let list = AttributeValue::L(vec![AttributeValue::Bool(true)]);
        assert_eq!(value_bytes(&list), 3 + 1 + 1);
    }
}
