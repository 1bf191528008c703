//! The registry: binding, resolution, throttling, timeouts, metrics.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Value};
use tokio::sync::Notify;
use voxbridge_functions::{Function, FunctionError, FunctionOptions, Registry};

/// Answers `{"echo": <Parameters>}`, or fails when the parameters say so.
struct Echo(&'static str);

#[async_trait]
impl Function for Echo {
    fn name(&self) -> &str {
        self.0
    }
    async fn invoke(&self, event: Value) -> Result<Value, FunctionError> {
        let params = event["Details"]["Parameters"].clone();
        if params["fail"] == "yes" {
            return Err(FunctionError::failed("asked to fail"));
        }
        Ok(json!({"echo": params}))
    }
}

/// Waits until released; counts how many invocations started.
struct Gate {
    release: Arc<Notify>,
    started: Arc<Notify>,
}

#[async_trait]
impl Function for Gate {
    fn name(&self) -> &str {
        "Gate"
    }
    async fn invoke(&self, _event: Value) -> Result<Value, FunctionError> {
        self.started.notify_one();
        self.release.notified().await;
        Ok(json!({}))
    }
}

/// Never answers.
struct Hang;

#[async_trait]
impl Function for Hang {
    fn name(&self) -> &str {
        "Hang"
    }
    async fn invoke(&self, _event: Value) -> Result<Value, FunctionError> {
        std::future::pending().await
    }
}

fn event(params: Value) -> Value {
    json!({"Details": {"ContactData": {"ContactId": "c-1"}, "Parameters": params}, "Name": "ContactFlowEvent"})
}

const LONG: Duration = Duration::from_secs(8);

#[test]
fn arns_resolve_by_binding_qualifier_name_and_suffix() {
    let r = Registry::new();
    r.register(Arc::new(Echo("InvokeTelephonyIntegrationApiFunction")), FunctionOptions::default());
    r.register(Arc::new(Echo("InvokeSalesforceRestApiFunction")), FunctionOptions::default());
    r.register(Arc::new(Echo("Custom")), FunctionOptions::default());
    assert!(r.bind("%%INVOKE_TELEPHONY_FUNCTION_ARN%%", "InvokeTelephonyIntegrationApiFunction"));
    assert!(r.bind("arn:aws:lambda:us-east-1:1:function:lookup", "Custom"));
    assert!(!r.bind("arn:x", "NoSuchFunction"), "binding to an unknown function is refused");

    let cases = [
        ("%%INVOKE_TELEPHONY_FUNCTION_ARN%%", Some("InvokeTelephonyIntegrationApiFunction")),
        (
            "arn:aws:lambda:us-west-2:123:function:myOrg-InvokeTelephonyIntegrationApiFunction",
            Some("InvokeTelephonyIntegrationApiFunction"),
        ),
        (
            "arn:aws:lambda:us-west-2:593793031641:function:orgFarm2Varun-InvokeSalesforceRestApiFunction:active",
            Some("InvokeSalesforceRestApiFunction"),
        ),
        ("arn:aws:lambda:us-east-1:1:function:lookup", Some("Custom")),
        ("arn:aws:lambda:us-east-1:1:function:lookup:prod", Some("Custom")),
        ("InvokeTelephonyIntegrationApiFunction", Some("InvokeTelephonyIntegrationApiFunction")),
        ("arn:aws:lambda:us-west-2:589596482256:function:HVCC-kvsConsumerTrigger", None),
        ("arn:aws:lambda:us-west-2:1:function:InvokeTelephonyIntegrationApiFunction-v2", None),
        ("", None),
    ];
    for (arn, expected) in cases {
        assert_eq!(r.resolve(arn).as_deref(), expected, "{arn}");
        assert_eq!(r.is_known(arn), expected.is_some(), "{arn}");
    }
}

#[tokio::test]
async fn invocations_answer_and_count() {
    let r = Registry::new();
    r.register(Arc::new(Echo("Echo")), FunctionOptions::default());
    let ok = r.invoke("arn:aws:lambda:r:1:function:x-Echo", event(json!({"a": "1"})), LONG).await;
    assert_eq!(ok.function.as_deref(), Some("Echo"));
    assert_eq!(ok.result, Ok(json!({"echo": {"a": "1"}})));
    let failed = r.invoke("Echo", event(json!({"fail": "yes"})), LONG).await;
    assert_eq!(failed.result, Err(FunctionError::failed("asked to fail")));
    let missing = r.invoke("arn:aws:lambda:r:1:function:Nope", event(json!({})), LONG).await;
    assert!(matches!(missing.result, Err(FunctionError::NotFound(_))));
    assert_eq!(missing.function, None);

    let m = r.metrics_of("Echo").unwrap();
    assert_eq!((m.invocations, m.errors, m.throttles, m.concurrent_executions), (2, 1, 0, 0));
    assert_eq!(m.max_concurrent_executions, 1);
    assert!(m.duration_max <= m.duration_sum);
    assert_eq!(r.metrics().len(), 1);
}

#[tokio::test]
async fn reserved_concurrency_throttles_the_excess() {
    let r = Arc::new(Registry::new());
    let release = Arc::new(Notify::new());
    let started = Arc::new(Notify::new());
    r.register(
        Arc::new(Gate { release: release.clone(), started: started.clone() }),
        FunctionOptions { reserved_concurrency: Some(1), ..Default::default() },
    );
    let first = {
        let r = r.clone();
        tokio::spawn(async move { r.invoke("Gate", event(json!({})), LONG).await })
    };
    started.notified().await;
    assert_eq!(r.metrics_of("Gate").unwrap().concurrent_executions, 1);

    let second = r.invoke("Gate", event(json!({})), LONG).await;
    assert_eq!(second.result, Err(FunctionError::Throttled("Gate".into())));
    assert!(second.result.as_ref().unwrap_err().to_string().starts_with("TooManyRequestsException"));

    release.notify_one();
    assert_eq!(first.await.unwrap().result, Ok(json!({})));
    let m = r.metrics_of("Gate").unwrap();
    assert_eq!((m.invocations, m.errors, m.throttles, m.concurrent_executions), (1, 0, 1, 0));

    // The slot is free again.
    let r2 = r.clone();
    let third = tokio::spawn(async move { r2.invoke("Gate", event(json!({})), LONG).await });
    started.notified().await;
    release.notify_one();
    assert!(third.await.unwrap().result.is_ok());
}

#[tokio::test]
async fn zero_reserved_concurrency_always_throttles() {
    let r = Registry::new();
    r.register(
        Arc::new(Echo("Echo")),
        FunctionOptions { reserved_concurrency: Some(0), ..Default::default() },
    );
    let out = r.invoke("Echo", event(json!({})), LONG).await;
    assert!(matches!(out.result, Err(FunctionError::Throttled(_))));
    assert_eq!(r.metrics_of("Echo").unwrap().invocations, 0);
}

#[tokio::test]
async fn the_shorter_time_limit_applies() {
    let r = Registry::new();
    r.register(
        Arc::new(Hang),
        FunctionOptions { timeout: Some(Duration::from_millis(20)), ..Default::default() },
    );
    let out = r.invoke("Hang", event(json!({})), LONG).await;
    assert_eq!(out.result, Err(FunctionError::Timeout(20)));
    let m = r.metrics_of("Hang").unwrap();
    assert_eq!((m.invocations, m.errors), (1, 1));

    let r = Registry::new();
    r.register(Arc::new(Hang), FunctionOptions::default());
    let out = r.invoke("Hang", event(json!({})), Duration::from_millis(10)).await;
    assert_eq!(out.result, Err(FunctionError::Timeout(10)));
}

#[tokio::test]
async fn replacing_a_function_keeps_its_metrics_and_bindings() {
    let r = Registry::new();
    r.register(Arc::new(Echo("Echo")), FunctionOptions::default());
    assert!(r.bind("%%ECHO%%", "Echo"));
    r.invoke("%%ECHO%%", event(json!({})), LONG).await;
    r.register(Arc::new(Echo("Echo")), FunctionOptions::default());
    r.invoke("%%ECHO%%", event(json!({})), LONG).await;
    assert_eq!(r.metrics_of("Echo").unwrap().invocations, 2);
}
