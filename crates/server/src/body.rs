//! Request bodies: JSON or XML, as the guide allows, parsed into wire types with messages
//! that name the offending field.
//!
//! XML is read into the same JSON value tree a JSON body gives: the root element's name is
//! ignored, an element with only text becomes a string, repeated child names become arrays,
//! and a wrapper element holding one kind of child (`<participants><participant>…`) is
//! unwrapped. Because XML carries only text, the deserialisers in this module accept
//! numbers and booleans given as strings.

use axum::http::{header, HeaderMap};
use quick_xml::events::Event;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};
use voxbridge_core::{ApiError, ErrorCode, Fields};

/// Parses a request body according to its `Content-Type`. An empty body (or JSON `null`)
/// is `Value::Null`; endpoints without parameters accept it with any content type.
pub fn parse_value(headers: &HeaderMap, body: &[u8]) -> Result<Value, ApiError> {
    let trimmed = body.trim_ascii();
    let ctype = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let mime = ctype.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if trimmed.is_empty() {
        return Ok(Value::Null);
    }
    let is_json = mime == "application/json" || mime.ends_with("+json");
    let is_xml = mime == "application/xml" || mime == "text/xml" || mime.ends_with("+xml");
    if is_json {
        serde_json::from_slice(trimmed).map_err(|e| {
            ApiError::new(ErrorCode::MalformedRequest, format!("the body is not valid JSON: {e}"))
        })
    } else if is_xml {
        parse_xml(trimmed)
    } else if mime.is_empty() {
        Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "Content-Type is missing: send application/json or application/xml",
        ))
    } else {
        Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            format!("Content-Type `{mime}` is not supported: send application/json or application/xml"),
        ))
    }
}

/// Parses the body into `T`, naming the field that does not fit.
pub fn parse<T: DeserializeOwned>(headers: &HeaderMap, body: &[u8]) -> Result<T, ApiError> {
    let value = parse_value(headers, body)?;
    from_value(value)
}

pub fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    if has_nul(&value) {
        return Err(ApiError::new(
            ErrorCode::MalformedRequest,
            "the body contains a NUL character, which no field accepts",
        ));
    }
    if !value.is_object() {
        return Err(ApiError::new(
            ErrorCode::MalformedRequest,
            "the body must be a JSON object or an XML element",
        ));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            ApiError::new(
                ErrorCode::MalformedRequest,
                format!("the body does not fit this endpoint: {inner}"),
            )
        } else {
            ApiError::new(ErrorCode::InvalidFieldValue, format!("`{path}` {inner}"))
        }
    })
}

/// Text with NUL characters cannot be stored (PostgreSQL refuses it), so it is refused at
/// the edge for every backend alike.
pub(crate) fn has_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(a) => a.iter().any(has_nul),
        Value::Object(m) => m.iter().any(|(k, x)| k.contains('\0') || has_nul(x)),
        _ => false,
    }
}

/// Checks a path segment that names a call or conversation.
pub fn check_key(name: &str, key: &str) -> Result<(), ApiError> {
    if key.len() > 255 {
        return Err(ApiError::invalid(name, "is longer than 255 characters"));
    }
    if key.contains('\0') {
        return Err(ApiError::invalid(name, "contains a NUL character"));
    }
    Ok(())
}

const MAX_XML_DEPTH: usize = 64;

/// An element being read: its name, the children read so far, and its text.
type OpenElement = (String, Vec<(String, Value)>, String);

fn parse_xml(body: &[u8]) -> Result<Value, ApiError> {
    let bad =
        |why: String| ApiError::new(ErrorCode::MalformedRequest, format!("the body is not valid XML: {why}"));
    let mut reader = quick_xml::Reader::from_reader(body);
    reader.config_mut().trim_text(true);
    let mut stack: Vec<OpenElement> = Vec::new();
    let mut root: Option<Value> = None;
    let mut buf = Vec::new();
    loop {
        let event = reader.read_event_into(&mut buf).map_err(|e| bad(e.to_string()))?;
        match event {
            Event::Start(e) => {
                if root.is_some() {
                    return Err(bad("more than one root element".into()));
                }
                if stack.len() >= MAX_XML_DEPTH {
                    return Err(bad(format!("elements nest deeper than {MAX_XML_DEPTH} levels")));
                }
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                stack.push((name, Vec::new(), String::new()));
            }
            Event::Empty(e) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                match stack.last_mut() {
                    Some(parent) => parent.1.push((name, Value::String(String::new()))),
                    None => root = Some(Value::Object(Map::new())),
                }
            }
            Event::Text(t) => {
                let text = t.unescape().map_err(|e| bad(e.to_string()))?;
                if let Some(top) = stack.last_mut() {
                    top.2.push_str(&text);
                }
            }
            Event::CData(t) => {
                if let Some(top) = stack.last_mut() {
                    top.2.push_str(&String::from_utf8_lossy(&t));
                }
            }
            Event::End(_) => {
                let (name, children, text) = stack.pop().ok_or_else(|| bad("unbalanced end tag".into()))?;
                let value = element_value(children, text);
                match stack.last_mut() {
                    Some(parent) => parent.1.push((name, value)),
                    None => root = Some(value),
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if !stack.is_empty() {
        return Err(bad("the document ends inside an element".into()));
    }
    match root {
        Some(Value::String(s)) if s.is_empty() => Ok(Value::Object(Map::new())),
        Some(v @ Value::Object(_)) => Ok(v),
        Some(_) => Err(bad("the root element must contain elements, not text".into())),
        None => Err(bad("no root element".into())),
    }
}

fn element_value(children: Vec<(String, Value)>, text: String) -> Value {
    if children.is_empty() {
        return Value::String(text);
    }
    let mut map = Map::new();
    for (name, value) in children {
        match map.get_mut(&name) {
            Some(Value::Array(items)) => items.push(value),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, value]);
            }
            None => {
                map.insert(name, value);
            }
        }
    }
    Value::Object(map)
}

/// Accepts a number, or a string holding one.
pub fn opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    use serde::de::Error;
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9.2e18).map(|f| f as i64))
            .map(Some)
            .ok_or_else(|| D::Error::custom(format!("must be an integer, got {n}"))),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => {
            s.trim().parse().map(Some).map_err(|_| D::Error::custom(format!("must be an integer, got `{s}`")))
        }
        Some(other) => Err(D::Error::custom(format!("must be an integer, got {other}"))),
    }
}

/// Accepts a boolean, or the strings `true`/`false`.
pub fn opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    use serde::de::Error;
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(b)),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(other) => Err(D::Error::custom(format!("must be true or false, got {other}"))),
    }
}

/// Accepts a string, or a number or boolean written as one.
pub fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    use serde::de::Error;
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(v @ (Value::Number(_) | Value::Bool(_))) => Ok(Some(v.to_string())),
        Some(other) => Err(D::Error::custom(format!("must be a string, got {other}"))),
    }
}

/// Accepts an array, a single item (XML with one child), or an XML wrapper element.
pub fn list<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<Vec<T>, D::Error> {
    use serde::de::Error;
    let value = Option::<Value>::deserialize(d)?.unwrap_or(Value::Null);
    let items = match value {
        Value::Null => Vec::new(),
        Value::Array(items) => items,
        Value::String(s) if s.is_empty() => Vec::new(),
        Value::Object(map) if map.len() == 1 && map.values().all(|v| v.is_array() || v.is_object()) => {
            match map.into_iter().next().map(|(_, v)| v) {
                Some(Value::Array(items)) => items,
                Some(one) => vec![one],
                None => Vec::new(),
            }
        }
        other => vec![other],
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, v)| serde_json::from_value(v).map_err(|e| D::Error::custom(format!("item {i}: {e}"))))
        .collect()
}

/// Accepts a JSON object, or a string holding one (the documented form of `callAttributes`
/// and `flowInputParameters`).
pub fn opt_fields<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Fields>, D::Error> {
    use serde::de::Error;
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(map)) => Ok(Some(map)),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(&s) {
            Ok(Value::Object(map)) => Ok(Some(map)),
            Ok(_) => Err(D::Error::custom("must be a JSON object (or a string holding one)")),
            Err(e) => Err(D::Error::custom(format!("is not valid JSON: {e}"))),
        },
        Some(other) => {
            Err(D::Error::custom(format!("must be a JSON object (or a string holding one), got {other}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(ct: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_str(ct).unwrap());
        h
    }

    #[test]
    fn xml_becomes_json_tree() {
        let xml = br#"<?xml version="1.0"?><voiceCall><vendorCallKey>k1</vendorCallKey>
            <participants><participantKey>p</participantKey><type>END_USER</type></participants>
            <x><a>1</a><a>2</a></x><empty/></voiceCall>"#;
        let v = parse_value(&headers("application/xml; charset=utf-8"), xml).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"vendorCallKey":"k1","participants":{"participantKey":"p","type":"END_USER"},
                "x":{"a":["1","2"]},"empty":""})
        );
    }

    #[test]
    fn content_types() {
        assert_eq!(
            parse_value(&headers("text/plain"), b"{}").unwrap_err().code,
            ErrorCode::UnsupportedMediaType
        );
        assert_eq!(parse_value(&HeaderMap::new(), b"{}").unwrap_err().code, ErrorCode::UnsupportedMediaType);
        assert_eq!(parse_value(&HeaderMap::new(), b"").unwrap(), Value::Null);
        assert_eq!(
            parse_value(&headers("application/json"), b"{").unwrap_err().code,
            ErrorCode::MalformedRequest
        );
        assert_eq!(
            parse_value(&headers("application/xml"), b"<a><b></a>").unwrap_err().code,
            ErrorCode::MalformedRequest
        );
    }
}
