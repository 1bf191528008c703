//! Stream batches in the Lambda Kinesis event shape, so a function written for a Kinesis
//! trigger (the guide's CTRDataSync, ContactLensConsumer) reads our records unchanged.
//!
//! Shape: `Records[{kinesis{kinesisSchemaVersion, partitionKey, sequenceNumber, data
//! (base64), approximateArrivalTimestamp (epoch seconds, fractional)}, eventSource
//! "aws:kinesis", eventVersion "1.0", eventID "shardId-000000000000:<seq>", eventName
//! "aws:kinesis:record", awsRegion, eventSourceARN}]`. Every stream is one shard, so the
//! shard id is fixed. `invokeIdentityArn` is left out: there is no IAM role to name.

use crate::BusRecord;
use base64::Engine;
use serde_json::{json, Value};

/// The shard every stream has.
const SHARD_ID: &str = "shardId-000000000000";

/// A Kinesis stream ARN for a bus stream (`arn:aws:kinesis:REGION:ACCOUNT:stream/NAME`).
pub fn stream_arn(region: &str, account: &str, stream: &str) -> String {
    format!("arn:aws:kinesis:{region}:{account}:stream/{stream}")
}

/// The Lambda event for a batch. `awsRegion` comes from the ARN's region field
/// (`us-east-1` if the ARN has none).
pub fn lambda_kinesis_event(stream_arn: &str, records: &[BusRecord]) -> Value {
    let region = stream_arn.split(':').nth(3).filter(|r| !r.is_empty()).unwrap_or("us-east-1");
    let records: Vec<Value> = records
        .iter()
        .map(|r| {
            let seq = r.sequence_number.to_string();
            // Milliseconds to seconds exactly as Kinesis shows them: three decimals at most.
            let arrival = r.approximate_arrival_timestamp_ms as f64 / 1000.0;
            json!({
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": r.partition_key,
                    "sequenceNumber": seq,
                    "data": base64::engine::general_purpose::STANDARD.encode(&r.data),
                    "approximateArrivalTimestamp": arrival,
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": format!("{SHARD_ID}:{seq}"),
                "eventName": "aws:kinesis:record",
                "awsRegion": region,
                "eventSourceARN": stream_arn,
            })
        })
        .collect();
    json!({ "Records": records })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SequenceNumber;

    #[test]
    fn kinesis_event_shape() {
        let arn = stream_arn("eu-west-1", "123456789012", "ctr");
        let record = BusRecord {
            sequence_number: SequenceNumber::new(42),
            partition_key: "contact-1".into(),
            data: br#"{"ContactId":"c1"}"#.to_vec(),
            approximate_arrival_timestamp_ms: 1_545_084_650_987,
        };
        let event = lambda_kinesis_event(&arn, &[record]);
        let expected = json!({"Records": [{
            "kinesis": {
                "kinesisSchemaVersion": "1.0",
                "partitionKey": "contact-1",
                "sequenceNumber": "00000000000000000042",
                "data": "eyJDb250YWN0SWQiOiJjMSJ9",
                "approximateArrivalTimestamp": 1545084650.987,
            },
            "eventSource": "aws:kinesis",
            "eventVersion": "1.0",
            "eventID": "shardId-000000000000:00000000000000000042",
            "eventName": "aws:kinesis:record",
            "awsRegion": "eu-west-1",
            "eventSourceARN": "arn:aws:kinesis:eu-west-1:123456789012:stream/ctr",
        }]});
        assert_eq!(event, expected);
        assert_eq!(lambda_kinesis_event("not-an-arn", &[])["Records"], json!([]));
    }
}
