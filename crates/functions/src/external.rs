//! External functions: an HTTP endpoint that receives the Lambda event as a JSON POST body
//! and answers with the handler's JSON, so users can plug in their own handlers (an existing
//! Node.js Lambda handler behind a ten-line HTTP wrapper, for one).
//!
//! Contract: a 2xx answer with a JSON body is the function's response. Any other status is a
//! handler error whose message is the body (a Lambda-style `{"errorType","errorMessage"}`
//! body is read as such); an unreachable endpoint or a body that is not JSON is an error too.

use async_trait::async_trait;
use serde_json::Value;

use crate::{Function, FunctionError};

/// A function served over HTTP at `url`.
#[derive(Debug, Clone)]
pub struct HttpFunction {
    name: String,
    url: String,
    client: reqwest::Client,
}

impl HttpFunction {
    pub fn new(name: impl Into<String>, url: impl Into<String>) -> HttpFunction {
        HttpFunction::with_client(name, url, reqwest::Client::new())
    }

    pub fn with_client(
        name: impl Into<String>,
        url: impl Into<String>,
        client: reqwest::Client,
    ) -> HttpFunction {
        HttpFunction { name: name.into(), url: url.into(), client }
    }

    pub fn url(&self) -> &str {
        &self.url
    }
}

#[async_trait]
impl Function for HttpFunction {
    fn name(&self) -> &str {
        &self.name
    }

    async fn invoke(&self, event: Value) -> Result<Value, FunctionError> {
        let resp = self
            .client
            .post(&self.url)
            .json(&event)
            .send()
            .await
            .map_err(|e| FunctionError::failed(format!("cannot reach {}: {e}", self.url)))?;
        let status = resp.status();
        let text =
            resp.text().await.map_err(|e| FunctionError::failed(format!("reading the answer: {e}")))?;
        let body: Option<Value> = serde_json::from_str(&text).ok();
        if !status.is_success() {
            if let Some(Value::Object(m)) = &body {
                if let Some(message) = m.get("errorMessage").and_then(Value::as_str) {
                    let error_type = m.get("errorType").and_then(Value::as_str).unwrap_or("Error");
                    return Err(FunctionError::Failed {
                        error_type: error_type.to_string(),
                        message: message.to_string(),
                    });
                }
            }
            return Err(FunctionError::failed(format!("HTTP {}: {}", status.as_u16(), truncate(&text))));
        }
        body.ok_or_else(|| FunctionError::failed(format!("the answer is not JSON: {}", truncate(&text))))
    }
}

pub(crate) fn truncate(s: &str) -> String {
    const MAX: usize = 500;
    match s.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_string(),
    }
}
