//! Decoding the images of DynamoDB stream records (the shape Lambda delivers).

use std::collections::HashMap;

use super::StorageError;
use super::keys::{BALANCE_PREFIX, FEED_PREFIX, is_order_sk};
use super::orders::{OrderRecord, order_from_record};
use super::records::BalanceRecord;
use crate::domain::model::{BalanceItem, FeedEntry, FeedEvent};
use crate::domain::order::OrderState;

/// A stream record image in Lambda's event shape.
pub type StreamImage = serde_dynamo::Item;

/// The balance item in a stream image, `None` for other items (sessions, feed, cursors) and
/// for empty images (the old image of an insert).
pub fn balance_item_from_image(image: &StreamImage) -> Result<Option<BalanceItem>, StorageError> {
    let pk = match image.get("pk") {
        Some(serde_dynamo::AttributeValue::S(pk)) => pk,
        _ => return Ok(None),
    };
    if !pk.starts_with(BALANCE_PREFIX) || image_is_order(image) {
        return Ok(None);
    }
    let map: HashMap<String, serde_dynamo::AttributeValue> = image.clone().into();
    let record: BalanceRecord =
        serde_dynamo::from_item(map).map_err(|e| StorageError::corrupt(pk.clone(), e))?;
    BalanceItem::try_from(record).map(Some)
}

/// Whether `image` is of an order item (which shares its wallet's value partition).
fn image_is_order(image: &StreamImage) -> bool {
    matches!(image.get("sk"), Some(serde_dynamo::AttributeValue::S(sk)) if is_order_sk(sk))
}

/// The order item in a stream image, `None` for every other item and for empty images (the
/// old image of an insert, the new image of a removal).
pub fn order_from_image(image: &StreamImage) -> Result<Option<OrderState>, StorageError> {
    let pk = match image.get("pk") {
        Some(serde_dynamo::AttributeValue::S(pk)) => pk,
        _ => return Ok(None),
    };
    if !pk.starts_with(BALANCE_PREFIX) || !image_is_order(image) {
        return Ok(None);
    }
    let map: HashMap<String, serde_dynamo::AttributeValue> = image.clone().into();
    let record: OrderRecord =
        serde_dynamo::from_item(map).map_err(|e| StorageError::corrupt(pk.clone(), e))?;
    order_from_record(record).map(Some)
}

/// The change-feed entry in a stream image — a value change or an `order_status` — `None`
/// for every other item: what a consumer of the table's stream that delivers feed entries
/// (webhooks) decodes, the same way the api's feed reads do.
pub fn feed_event_from_image(image: &StreamImage) -> Result<Option<FeedEvent>, StorageError> {
    let pk = match image.get("pk") {
        Some(serde_dynamo::AttributeValue::S(pk)) => pk,
        _ => return Ok(None),
    };
    if !pk.starts_with(FEED_PREFIX) {
        return Ok(None);
    }
    let item: super::Item = image.clone().into();
    super::feed::feed_event_from_item(item).map(Some)
}

/// The value-change entry in a stream image (a feed item the fanout appended), `None` for
/// other items, for `order_status` entries and for empty images.
pub fn feed_entry_from_image(image: &StreamImage) -> Result<Option<FeedEntry>, StorageError> {
    Ok(match feed_event_from_image(image)? {
        Some(FeedEvent::Value(entry)) => Some(entry),
        Some(FeedEvent::Order(_)) | None => None,
    })
}

/// The version of the balance item in `image` (0 when it has none: written before versions
/// were counted, or not a balance item).
pub fn image_version(image: &StreamImage) -> u64 {
    match image.get("version") {
        Some(serde_dynamo::AttributeValue::N(n)) => n.parse().unwrap_or(0),
        _ => 0,
    }
}

/// Whether the write in `image` was the first read of a newly tracked value (see
/// [`super::ValueWrite::first_read`]).
pub fn image_is_first_read(image: &StreamImage) -> bool {
    matches!(
        image.get("first"),
        Some(serde_dynamo::AttributeValue::Bool(true))
    )
}

#[cfg(test)]
mod props {
    //! Property tests of stream image decoding: any image decodes or fails with an error (no
    //! panic), anything outside the balance partitions is ignored, and every stored balance
    //! item comes back from its image unchanged.

    use alloy::primitives::{Address, B256, U256};
    use proptest::prelude::*;
    use serde_dynamo::AttributeValue;

    use super::*;
    use crate::domain::model::{BalanceKey, TokenRead};

    fn attribute() -> impl Strategy<Value = AttributeValue> {
        let leaf = prop_oneof![
            "\\PC{0,20}".prop_map(AttributeValue::S),
            "-?[0-9]{1,30}(\\.[0-9]{1,3})?".prop_map(AttributeValue::N),
            "0x[0-9a-fA-F]{0,64}".prop_map(AttributeValue::S),
            any::<bool>().prop_map(AttributeValue::Bool),
            Just(AttributeValue::Null(true)),
            prop::collection::vec(any::<u8>(), 0..8).prop_map(AttributeValue::B),
            prop::collection::vec("[a-z0-9]{0,6}", 0..3).prop_map(AttributeValue::Ss),
        ];
        leaf.prop_recursive(2, 8, 3, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(AttributeValue::L),
                prop::collection::hash_map("[a-z]{1,4}", inner, 0..3).prop_map(AttributeValue::M),
            ]
        })
    }

    /// Images with the attribute names a balance item has (and some others), holding anything.
    fn image() -> impl Strategy<Value = StreamImage> {
        let name = prop::sample::select(vec![
            "pk",
            "sk",
            "chain_id",
            "owner",
            "token",
            "spender",
            "read",
            "block",
            "tx",
            "updated_at",
            "other",
        ]);
        let pk = prop_oneof![
            "B#[0-9]{0,3}#0x[0-9a-f]{40}",
            "(S|F|C)#[0-9]{1,3}",
            "\\PC{0,8}",
        ]
        .prop_map(AttributeValue::S);
        (
            prop::collection::hash_map(name.prop_map(str::to_string), attribute(), 0..10),
            prop::option::of(pk),
        )
            .prop_map(|(mut map, pk)| {
                if let Some(pk) = pk {
                    map.insert("pk".into(), pk);
                }
                StreamImage::from(map)
            })
    }

    fn balance_item() -> impl Strategy<Value = BalanceItem> {
        let address = any::<[u8; 20]>().prop_map(Address::from);
        let key = prop_oneof![
            address
                .clone()
                .prop_map(|token| BalanceKey::Balance { token }),
            (address.clone(), address.clone())
                .prop_map(|(token, spender)| BalanceKey::Allowance { token, spender }),
        ];
        let read = prop_oneof![
            Just(TokenRead::Failed),
            any::<[u8; 32]>().prop_map(|b| TokenRead::Value(U256::from_be_bytes(b))),
        ];
        (
            any::<u64>(),
            address,
            key,
            read,
            any::<u64>(),
            prop::option::of(any::<[u8; 32]>().prop_map(B256::from)),
        )
            .prop_map(|(chain_id, owner, key, read, block, tx_hash)| BalanceItem {
                chain_id,
                owner,
                key,
                read,
                block,
                tx_hash,
            })
    }

    proptest! {
        #[test]
        fn any_image_decodes_or_is_an_error(image in image()) {
            let pk = match image.get("pk") {
                Some(AttributeValue::S(pk)) => Some(pk.clone()),
                _ => None,
            };
            match balance_item_from_image(&image) {
                Ok(Some(_)) => prop_assert!(pk.is_some_and(|pk| pk.starts_with(BALANCE_PREFIX))),
                // Order items share the value partition and are not balances.
                Ok(None) => prop_assert!(
                    !pk.is_some_and(|pk| pk.starts_with(BALANCE_PREFIX)) || image_is_order(&image)
                ),
                Err(_) => prop_assert!(pk.is_some_and(|pk| pk.starts_with(BALANCE_PREFIX))),
            }
        }

        #[test]
        fn a_stored_balance_item_decodes_to_itself(item in balance_item()) {
            let image: StreamImage = serde_dynamo::to_item(BalanceRecord::from(&item)).unwrap();
            prop_assert_eq!(balance_item_from_image(&image).unwrap(), Some(item));
        }
    }
}
