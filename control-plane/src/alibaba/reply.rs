//! Answers of the RPC dialect: JSON by default, XML when the request says `Format=XML`. A success is
//! the action's fields plus `RequestId`; an error is `{RequestId, HostId, Code, Message}` with its
//! HTTP status. In XML a success is wrapped in `<ActionResponse>`, an error in `<Error>`, and a list
//! repeats its element once per item.

use std::fmt::Write;

use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use super::errors::RpcError;
use super::params::Params;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Json,
    Xml,
}

impl Format {
    pub fn of(params: &Params) -> Self {
        match params.get("Format") {
            Some(f) if f.eq_ignore_ascii_case("xml") => Self::Xml,
            _ => Self::Json,
        }
    }
}

pub(crate) fn success(format: Format, action: &str, request_id: &str, mut fields: Map<String, Value>) -> Response {
    fields.insert("RequestId".into(), Value::String(request_id.into()));
    render(format, StatusCode::OK, &format!("{action}Response"), fields)
}

pub(crate) fn error(format: Format, request_id: &str, host_id: &str, e: &RpcError) -> Response {
    let mut fields = Map::new();
    fields.insert("RequestId".into(), request_id.into());
    fields.insert("HostId".into(), host_id.into());
    fields.insert("Code".into(), e.code.as_ref().into());
    fields.insert("Message".into(), e.message.clone().into());
    render(format, e.status, "Error", fields)
}

fn render(format: Format, status: StatusCode, root: &str, fields: Map<String, Value>) -> Response {
    let (body, content_type) = match format {
        Format::Json => (Value::Object(fields).to_string(), "application/json;charset=utf-8"),
        Format::Xml => {
            let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
            element(&mut xml, root, &Value::Object(fields));
            (xml, "application/xml;charset=utf-8")
        }
    };
    let mut response = (status, body).into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// `<name>value</name>`; an array becomes one element per item, null an empty element.
fn element(out: &mut String, name: &str, value: &Value) {
    match value {
        Value::Array(items) => items.iter().for_each(|item| element(out, name, item)),
        Value::Object(fields) => {
            let _ = write!(out, "<{name}>");
            for (k, v) in fields {
                element(out, k, v);
            }
            let _ = write!(out, "</{name}>");
        }
        Value::Null => {
            let _ = write!(out, "<{name}/>");
        }
        Value::String(s) => {
            let _ = write!(out, "<{name}>{}</{name}>", escape(s));
        }
        Value::Bool(_) | Value::Number(_) => {
            let _ = write!(out, "<{name}>{value}</{name}>");
        }
    }
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_repeats_list_elements_and_escapes_text() {
        let mut xml = String::new();
        let value = serde_json::json!({"Data": [{"GroupId": "GID_a"}, {"GroupId": "GID_<b>"}], "Ok": true, "N": 3});
        element(&mut xml, "ListGroupIdResponse", &value);
        assert_eq!(
            xml,
            "<ListGroupIdResponse><Data><GroupId>GID_a</GroupId></Data><Data><GroupId>GID_&lt;b&gt;</GroupId></Data>\
             <N>3</N><Ok>true</Ok></ListGroupIdResponse>"
        );
    }
}
