//! The parameters of an Alibaba-style request: the query string and, for a form POST, the body, both
//! decoded as `application/x-www-form-urlencoded` (so `+` is a space), in the order sent.

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method};

use super::errors::RpcError;
use crate::auth::MAX_SIGNED_BODY;

#[derive(Debug, Default, Clone)]
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    pub fn parse(query: Option<&str>, form: Option<&[u8]>) -> Self {
        let mut pairs: Vec<(String, String)> = form_urlencoded::parse(query.unwrap_or("").as_bytes())
            .into_owned()
            .collect();
        if let Some(body) = form {
            pairs.extend(form_urlencoded::parse(body).into_owned());
        }
        Self(pairs)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The first value of `name`, when there is a non-empty one.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// A parameter of the action; a missing one is `InvalidParameter.<Name>`.
    pub fn required(&self, name: &str) -> Result<&str, RpcError> {
        self.get(name)
            .ok_or_else(|| RpcError::invalid(name, format!("The parameter {name} is mandatory for this action.")))
    }

    /// A whole-number parameter, when there is one; anything else is `InvalidParameter.<Name>`.
    pub fn number<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>, RpcError> {
        self.get(name)
            .map(|v| {
                v.parse()
                    .map_err(|_| RpcError::invalid(name, format!("{name} must be a whole number in its range.")))
            })
            .transpose()
    }

    /// A repeated parameter `Name.1`, `Name.2`, ... in index order (the SDKs' way of sending lists).
    pub fn list(&self, name: &str) -> Vec<&str> {
        let prefix = format!("{name}.");
        let mut items: Vec<(u32, &str)> = self
            .0
            .iter()
            .filter_map(|(k, v)| {
                let index = k.strip_prefix(&prefix)?.parse().ok()?;
                Some((index, v.as_str()))
            })
            .collect();
        items.sort_by_key(|(index, _)| *index);
        items.into_iter().map(|(_, v)| v).collect()
    }
}

pub(crate) fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/x-www-form-urlencoded"))
}

/// Buffers the body (at most `MAX_SIGNED_BODY`) and reads the parameters; the form body counts only
/// on a POST that says it is a form.
pub(crate) async fn read(req: Request) -> Result<(Parts, Bytes, Params), RpcError> {
    let (parts, body) = req.into_parts();
    let bytes = buffer(body).await?;
    let form = (parts.method == Method::POST && is_form(&parts.headers)).then_some(&bytes[..]);
    let params = Params::parse(parts.uri.query(), form);
    Ok((parts, bytes, params))
}

pub(crate) async fn buffer(body: Body) -> Result<Bytes, RpcError> {
    axum::body::to_bytes(body, MAX_SIGNED_BODY)
        .await
        .map_err(|_| RpcError::parameter_check("The request body is larger than 1 MiB."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_and_form_are_form_decoded_in_order() {
        let p = Params::parse(
            Some("Action=SendMessage&Payload=a+b%2Bc&Empty="),
            Some(b"MqttTopic=T%2Fx&ClientIdList.2=b&ClientIdList.10=c&ClientIdList.1=a"),
        );
        assert_eq!(p.get("Payload"), Some("a b+c"));
        assert_eq!(p.get("MqttTopic"), Some("T/x"));
        assert_eq!(p.get("Empty"), None);
        assert_eq!(p.list("ClientIdList"), ["a", "b", "c"]);
        assert_eq!(p.iter().next(), Some(("Action", "SendMessage")));
        let e = p.required("InstanceId").unwrap_err();
        assert_eq!(e.code, "InvalidParameter.InstanceId");
    }
}
