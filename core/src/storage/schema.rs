//! The table's definition, for the local stack and tests (in AWS, template.yaml owns it).

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    StreamSpecification, StreamViewType, TimeToLiveSpecification,
};

use super::{StorageError, Table};

impl Table {
    /// Creates the table as template.yaml declares it (keys, stream with both images, TTL on
    /// `ttl`) unless it exists. Returns whether it was created.
    pub async fn create_if_missing(&self) -> Result<bool, StorageError> {
        let listed = self
            .client
            .list_tables()
            .send()
            .await
            .map_err(StorageError::from_sdk)?;
        if listed.table_names().iter().any(|n| n == &self.name) {
            return Ok(false);
        }
        let attr = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(StorageError::refused)
        };
        let key = |name: &str, kind| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
                .map_err(StorageError::refused)
        };
        self.client
            .create_table()
            .table_name(&self.name)
            .attribute_definitions(attr("pk")?)
            .attribute_definitions(attr("sk")?)
            .key_schema(key("pk", KeyType::Hash)?)
            .key_schema(key("sk", KeyType::Range)?)
            .billing_mode(BillingMode::PayPerRequest)
            .stream_specification(
                StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(StreamViewType::NewAndOldImages)
                    .build()
                    .map_err(StorageError::refused)?,
            )
            .send()
            .await
            .map_err(StorageError::from_sdk)?;
        self.client
            .update_time_to_live()
            .table_name(&self.name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .enabled(true)
                    .attribute_name("ttl")
                    .build()
                    .map_err(StorageError::refused)?,
            )
            .send()
            .await
            .map_err(StorageError::from_sdk)?;
        Ok(true)
    }
}
