//! Alibaba's ACS3-HMAC-SHA256 request signature, pure functions shared by the server (verify) and
//! clients/tests (sign). Canonical form, as in the reference signer of `alibabacloud-tea-openapi`:
//!
//! ```text
//! METHOD \n PATH \n CANONICAL_QUERY \n CANONICAL_HEADERS \n SIGNED_HEADERS \n hex(sha256(body))
//! ```
//! CANONICAL_QUERY sorts parameters by name, `name=value` with the value percent-encoded (all but
//! `A-Za-z0-9-_.~`); CANONICAL_HEADERS is `name:trimmed values joined by ','\n` for each signed header
//! (lower-case, sorted); the string to sign is `ACS3-HMAC-SHA256\n` + hex(sha256(canonical request))
//! and the signature is hex(HMAC-SHA256(AccessKeySecret, string to sign)).

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

pub const ALGORITHM: &str = "ACS3-HMAC-SHA256";

/// Headers every signed request must include in `SignedHeaders` (replay and body protection).
pub const REQUIRED_SIGNED_HEADERS: [&str; 4] = ["host", "x-acs-content-sha256", "x-acs-date", "x-acs-signature-nonce"];

/// The parsed `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub access_key_id: String,
    pub signed_headers: Vec<String>,
    pub signature: String,
}

/// Parses `ACS3-HMAC-SHA256 Credential=AK,SignedHeaders=a;b,Signature=hex`.
pub fn parse_authorization(value: &str) -> Option<Authorization> {
    let rest = value.strip_prefix(ALGORITHM)?.trim_start();
    let (mut ak, mut headers, mut sig) = (None, None, None);
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=')?;
        match k {
            "Credential" => ak = Some(v.to_string()),
            "SignedHeaders" => headers = Some(v.split(';').map(str::to_ascii_lowercase).collect::<Vec<_>>()),
            "Signature" => sig = Some(v.to_ascii_lowercase()),
            _ => return None,
        }
    }
    Some(Authorization {
        access_key_id: ak.filter(|a| !a.is_empty())?,
        signed_headers: headers?,
        signature: sig?,
    })
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Percent-encodes like Python's `quote(s, safe='~')`.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        // Only ASCII hex digits are decoded, so the slice below is always on char boundaries.
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && bytes[i + 1].is_ascii_hexdigit()
            && bytes[i + 2].is_ascii_hexdigit()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Canonical query string from the raw (encoded) query of the request line.
pub fn canonical_query(raw: Option<&str>) -> String {
    let mut params: Vec<(String, String)> = raw
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect();
    params.sort();
    params
        .iter()
        .map(|(k, v)| format!("{k}={}", percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Builds the canonical request. `header_values(name)` returns every value of a header (any case).
pub fn canonical_request(
    method: &str,
    path: &str,
    raw_query: Option<&str>,
    signed_headers: &[String],
    header_values: impl Fn(&str) -> Vec<String>,
    payload_sha256: &str,
) -> String {
    let mut names: Vec<&String> = signed_headers.iter().collect();
    names.sort();
    names.dedup();
    let mut headers = String::new();
    for name in &names {
        let mut values: Vec<String> = header_values(name).iter().map(|v| v.trim().to_string()).collect();
        values.sort();
        headers.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    let signed = names.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(";");
    let path = if path.is_empty() { "/" } else { path };
    format!(
        "{method}\n{path}\n{}\n{headers}\n{signed}\n{payload_sha256}",
        canonical_query(raw_query)
    )
}

pub fn string_to_sign(canonical_request: &str) -> String {
    format!("{ALGORITHM}\n{}", sha256_hex(canonical_request.as_bytes()))
}

pub fn signature(secret: &str, string_to_sign: &str) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(string_to_sign.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_authorization() {
        let a = parse_authorization("ACS3-HMAC-SHA256 Credential=AK1,SignedHeaders=host;x-acs-date,Signature=ABCDEF")
            .unwrap();
        assert_eq!(a.access_key_id, "AK1");
        assert_eq!(a.signed_headers, vec!["host", "x-acs-date"]);
        assert_eq!(a.signature, "abcdef");
        assert!(parse_authorization("Bearer x").is_none());
        assert!(parse_authorization("ACS3-HMAC-SHA256 Credential=AK1").is_none());
    }

    #[test]
    fn canonical_query_sorts_and_encodes() {
        assert_eq!(canonical_query(Some("b=2&a=x%20y&c=%40")), "a=x%20y&b=2&c=%40");
        assert_eq!(canonical_query(None), "");
        assert_eq!(percent_encode("a b/~"), "a%20b%2F~");
    }

    /// Vector produced by `alibabacloud_tea_openapi.utils.Utils.get_authorization` (the reference
    /// signer) for the same request.
    #[test]
    fn matches_the_reference_signer() {
        let headers = [
            ("host", "cp.example.com:8080"),
            ("x-acs-date", "2026-11-22T02:00:00Z"),
            ("x-acs-signature-nonce", "n-1"),
            (
                "x-acs-content-sha256",
                "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
            ),
            ("content-type", "application/json; charset=utf-8"),
            ("x-acs-action", "ApplyToken"),
        ];
        let auth = parse_authorization(
            "ACS3-HMAC-SHA256 Credential=LTAItest,SignedHeaders=content-type;host;x-acs-action;\
             x-acs-content-sha256;x-acs-date;x-acs-signature-nonce,\
             Signature=9d97ce473df203cd42cf2a9c3c52dc22337d430507225a100a7c21a9de6f746c",
        )
        .unwrap();
        let canonical = canonical_request(
            "POST",
            "/api/v1/instances/mqtt-abcdefabcdef/tokens",
            Some("b=x%20y&a=1%2F2&c=~%40"),
            &auth.signed_headers,
            |n| {
                headers
                    .iter()
                    .filter(|(h, _)| *h == n)
                    .map(|(_, v)| v.to_string())
                    .collect()
            },
            headers[3].1,
        );
        assert_eq!(signature("secret123", &string_to_sign(&canonical)), auth.signature);
    }
}
