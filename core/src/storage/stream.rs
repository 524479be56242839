//! Decoding the images of DynamoDB stream records (the shape Lambda delivers).

use std::collections::HashMap;

use super::StorageError;
use super::keys::BALANCE_PREFIX;
use super::records::BalanceRecord;
use crate::model::BalanceItem;

/// A stream record image in Lambda's event shape.
pub type StreamImage = serde_dynamo::Item;

/// The balance item in a stream image, `None` for other items (sessions, feed, cursors) and
/// for empty images (the old image of an insert).
pub fn balance_item_from_image(image: &StreamImage) -> Result<Option<BalanceItem>, StorageError> {
    let pk = match image.get("pk") {
        Some(serde_dynamo::AttributeValue::S(pk)) => pk,
        _ => return Ok(None),
    };
    if !pk.starts_with(BALANCE_PREFIX) {
        return Ok(None);
    }
    let map: HashMap<String, serde_dynamo::AttributeValue> = image.clone().into();
    let record: BalanceRecord =
        serde_dynamo::from_item(map).map_err(|e| StorageError::corrupt(pk.clone(), e))?;
    BalanceItem::try_from(record).map(Some)
}
