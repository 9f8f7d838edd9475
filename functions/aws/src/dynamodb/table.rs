//! Creating the table: [`create_table`], for tests and local use (the SAM template creates
//! the real one).

use aws_sdk_dynamodb::client::Waiters;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_dynamodb::Client;

use super::{
    DynamoError, GSI1, GSI1_PARTITION_KEY, GSI1_SORT_KEY, PARTITION_KEY, SORT_KEY,
    TABLE_ACTIVE_WAIT, TTL_ATTRIBUTE,
};

/// Creates the table as the `dynamodb` module documentation describes it (on-demand, TTL on
/// [`TTL_ATTRIBUTE`]) and waits until it is active. The SAM template creates the real one.
pub async fn create_table(client: &Client, table: &str) -> Result<(), DynamoError> {
    let string = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
    };
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
    };
    let by_id = GlobalSecondaryIndex::builder()
        .index_name(GSI1)
        .key_schema(key(GSI1_PARTITION_KEY, KeyType::Hash)?)
        .key_schema(key(GSI1_SORT_KEY, KeyType::Range)?)
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::All)
                .build(),
        )
        .build()?;
    client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(string(PARTITION_KEY)?)
        .attribute_definitions(string(SORT_KEY)?)
        .attribute_definitions(string(GSI1_PARTITION_KEY)?)
        .attribute_definitions(string(GSI1_SORT_KEY)?)
        .key_schema(key(PARTITION_KEY, KeyType::Hash)?)
        .key_schema(key(SORT_KEY, KeyType::Range)?)
        .global_secondary_indexes(by_id)
        .send()
        .await
        .map_err(|e| DynamoError::Request {
            operation: "CreateTable",
            source: Box::new(e),
        })?;
    client
        .wait_until_table_exists()
        .table_name(table)
        .wait(TABLE_ACTIVE_WAIT)
        .await
        .map_err(|e| DynamoError::Request {
            operation: "DescribeTable",
            source: Box::new(e),
        })?;
    client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name(TTL_ATTRIBUTE)
                .enabled(true)
                .build()?,
        )
        .send()
        .await
        .map_err(|e| DynamoError::Request {
            operation: "UpdateTimeToLive",
            source: Box::new(e),
        })?;
    Ok(())
}
