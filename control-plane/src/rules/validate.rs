//! The checks a rule passes before it is stored: each failure is a 400 naming the field as the API
//! spells it (`source.topicFilters[1]`, `target.url`, ...). Webhook hosts given as IP addresses are
//! checked against the target policy here already; brokers check every address they connect to.
//!
//! Why it is long (about 430 lines): some 360 lines of checks plus their table-driven tests, in one
//! module so that every field name the API reports comes from one place.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use axum::http::Uri;
use common::quotas::Quotas;
use common::rules::{NatsEndpoint, OutboxLimits, RuleSource, RuleTarget, TargetPolicy, WebhookFormat};
use common::topic;

use crate::error::{ApiError, ApiResult};

pub const MAX_NAME_CHARS: usize = 64;
pub const MAX_TOPIC_FILTERS: usize = 16;
pub const MAX_GROUP_IDS: usize = 100;
pub const MAX_NATS_URLS: usize = 10;
pub const MAX_URL_CHARS: usize = 2048;
pub const MAX_SUBJECT_CHARS: usize = 256;
pub const WEBHOOK_TIMEOUT_MS: std::ops::RangeInclusive<u64> = 100..=60_000;
pub const OUTBOX_BYTES: std::ops::RangeInclusive<u64> = (1 << 20)..=(1 << 30);
pub const OUTBOX_AGE_SECS: std::ops::RangeInclusive<u64> = 60..=7 * 24 * 3600;
const WEBHOOK_SECRET_CHARS: std::ops::RangeInclusive<usize> = 8..=1024;
const MAX_NATS_SECRET_BYTES: usize = 1024;
const MAX_NATS_CREDS_BYTES: usize = 16 * 1024;
const MAX_NATS_USER_BYTES: usize = 256;

/// What a rule is checked against: its instance as the locked transaction sees it.
pub struct Context<'a> {
    pub quotas: &'a Quotas,
    pub parent_topics: &'a [String],
    pub group_ids: &'a [String],
    pub policy: TargetPolicy,
}

type Check = Result<(), (String, String)>;

fn fail(field: impl Into<String>, message: impl Into<String>) -> Check {
    Err((field.into(), message.into()))
}

/// Checks a whole rule (secrets resolved).
pub fn rule(
    name: &str,
    source: &RuleSource,
    target: Option<&RuleTarget>,
    outbox: &OutboxLimits,
    cx: &Context<'_>,
) -> ApiResult<()> {
    check_rule(name, source, target, outbox, cx).map_err(|(field, message)| ApiError::invalid(field, message))
}

fn check_rule(
    name: &str,
    source: &RuleSource,
    target: Option<&RuleTarget>,
    outbox: &OutboxLimits,
    cx: &Context<'_>,
) -> Check {
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_NAME_CHARS || name.chars().any(char::is_control) || name.trim() != name {
        return fail(
            "name",
            format!("must be 1-{MAX_NAME_CHARS} characters, without control characters or surrounding spaces"),
        );
    }
    check_source(source, cx)?;
    match (source, target) {
        (RuleSource::Inflow(_), None) => {}
        (RuleSource::Inflow(_), Some(_)) => {
            return fail("target", "an inflow rule has no target: it publishes into its instance");
        }
        (_, None) => return fail("target", "required for outflow and status rules"),
        (_, Some(t)) => check_target(t, source, cx)?,
    }
    if !OUTBOX_BYTES.contains(&outbox.max_bytes) {
        return fail(
            "outbox.maxBytes",
            "must be between 1 MiB and 1 GiB (1048576-1073741824)",
        );
    }
    if !OUTBOX_AGE_SECS.contains(&outbox.max_age_secs) {
        return fail("outbox.maxAgeSecs", "must be between 60 and 604800 (7 days)");
    }
    Ok(())
}

fn check_source(source: &RuleSource, cx: &Context<'_>) -> Check {
    match source {
        RuleSource::Outflow {
            topic_filters,
            group_ids,
        } => {
            if topic_filters.is_empty() || topic_filters.len() > MAX_TOPIC_FILTERS {
                return fail("source.topicFilters", format!("1-{MAX_TOPIC_FILTERS} topic filters"));
            }
            for (i, f) in topic_filters.iter().enumerate() {
                let field = format!("source.topicFilters[{i}]");
                topic::validate_topic_filter(f, cx.quotas.max_topic_length as usize)
                    .or_else(|e| fail(&field, e.to_string()))?;
                check_parent(&field, f, cx)?;
            }
            check_groups(group_ids, cx)
        }
        RuleSource::Status { group_ids } => check_groups(group_ids, cx),
        RuleSource::Inflow(i) => {
            check_nats("source.nats", &i.nats)?;
            check_subject("source.subject", &i.subject, true)?;
            if let Some(stream) = &i.stream {
                check_stream(stream)?;
            }
            check_inflow_topic(&i.topic, cx)?;
            check_qos("source.qos", i.qos)
        }
    }
}

fn check_parent(field: &str, topic_or_filter: &str, cx: &Context<'_>) -> Check {
    let parent = topic::parent_of(topic_or_filter);
    if cx.parent_topics.iter().any(|p| p == parent) {
        Ok(())
    } else {
        fail(field, format!("parent topic {parent:?} does not exist in the instance"))
    }
}

fn check_groups(group_ids: &[String], cx: &Context<'_>) -> Check {
    if group_ids.len() > MAX_GROUP_IDS {
        return fail("source.groupIds", format!("at most {MAX_GROUP_IDS} group IDs"));
    }
    for (i, g) in group_ids.iter().enumerate() {
        if !cx.group_ids.iter().any(|known| known == g) {
            return fail(
                format!("source.groupIds[{i}]"),
                format!("group ID {g:?} does not exist in the instance"),
            );
        }
    }
    Ok(())
}

/// The topic an inflow rule publishes on: a topic name under an existing parent topic once
/// `{subject}` is replaced (which is not allowed in the parent topic itself).
fn check_inflow_topic(template: &str, cx: &Context<'_>) -> Check {
    let field = "source.topic";
    if topic::parent_of(template).contains("{subject}") {
        return fail(field, "{subject} cannot be in the parent topic");
    }
    let sample = template.replace("{subject}", "s");
    topic::validate_topic_name(&sample, cx.quotas.max_topic_length as usize).or_else(|e| fail(field, e.to_string()))?;
    check_parent(field, &sample, cx)
}

fn check_qos(field: &str, qos: u8) -> Check {
    if qos > 2 {
        return fail(field, "must be 0, 1 or 2");
    }
    Ok(())
}

fn check_target(target: &RuleTarget, source: &RuleSource, cx: &Context<'_>) -> Check {
    match target {
        RuleTarget::Webhook {
            url,
            format,
            secret,
            timeout_ms,
        } => {
            check_webhook_url(url, cx.policy)?;
            if *format == WebhookFormat::Raw && !matches!(source, RuleSource::Outflow { .. }) {
                return fail("target.format", "raw bodies are for outflow rules only");
            }
            if let Some(secret) = secret
                && !WEBHOOK_SECRET_CHARS.contains(&secret.chars().count())
            {
                return fail("target.secret", "must be 8-1024 characters");
            }
            if !WEBHOOK_TIMEOUT_MS.contains(timeout_ms) {
                return fail("target.timeoutMs", "must be between 100 and 60000");
            }
            Ok(())
        }
        RuleTarget::Nats { nats, subject, .. } => {
            check_nats("target.nats", nats)?;
            check_subject("target.subject", subject, false)
        }
        RuleTarget::Republish { topic: to, qos, .. } => {
            let field = "target.topic";
            topic::validate_topic_name(to, cx.quotas.max_topic_length as usize)
                .or_else(|e| fail(field, e.to_string()))?;
            check_parent(field, to, cx)?;
            if let RuleSource::Outflow { topic_filters, .. } = source
                && let Some(f) = topic_filters.iter().find(|f| topic::matches(f, to))
            {
                return fail(
                    field,
                    format!("the rule's own filter {f:?} matches it: every message would come round again"),
                );
            }
            check_qos("target.qos", *qos)
        }
    }
}

fn check_webhook_url(url: &str, policy: TargetPolicy) -> Check {
    let field = "target.url";
    if url.chars().count() > MAX_URL_CHARS {
        return fail(field, format!("longer than {MAX_URL_CHARS} characters"));
    }
    let Ok(parsed) = url.parse::<Uri>() else {
        return fail(field, "not a valid URL");
    };
    match parsed.scheme_str() {
        Some("http" | "https") => {}
        _ => return fail(field, "must start with http:// or https://"),
    }
    let Some(authority) = parsed.authority() else {
        return fail(field, "has no host");
    };
    if authority.as_str().contains('@') {
        return fail(
            field,
            "must not carry credentials; receivers check the signature instead",
        );
    }
    let host = authority.host().trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return fail(field, "has no host");
    }
    if host.eq_ignore_ascii_case("localhost") || host.to_ascii_lowercase().ends_with(".localhost") {
        return check_address(field, IpAddr::V4(Ipv4Addr::LOCALHOST), policy);
    }
    match host.parse::<IpAddr>() {
        Ok(ip) => check_address(field, ip, policy),
        // A name: brokers check the addresses it resolves to, every time they connect.
        Err(_) => Ok(()),
    }
}

/// Link-local (cloud metadata lives there) and unspecified addresses are always refused; loopback and
/// private ones only when the operator allows them (`rule_targets_allow_loopback` / `_private`).
fn check_address(field: &str, ip: IpAddr, policy: TargetPolicy) -> Check {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    let (link_local, loopback, private) = match ip {
        IpAddr::V4(v4) => (
            // 100.100.100.200: Alibaba Cloud's metadata service (inside 100.64/10).
            v4.is_link_local() || v4.is_unspecified() || v4.is_broadcast() || v4 == Ipv4Addr::new(100, 100, 100, 200),
            v4.is_loopback(),
            v4.is_private() || (v4.octets()[0] == 100 && (64..128).contains(&v4.octets()[1])),
        ),
        IpAddr::V6(v6) => (
            v6.is_unspecified()
                || (v6.segments()[0] & 0xffc0) == 0xfe80
                || v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254),
            v6.is_loopback(),
            (v6.segments()[0] & 0xfe00) == 0xfc00,
        ),
    };
    if link_local {
        return fail(field, format!("{ip} is a link-local, metadata or unspecified address"));
    }
    if loopback && !policy.allow_loopback {
        return fail(
            field,
            format!("{ip} is a loopback address, which this service does not allow"),
        );
    }
    if private && !policy.allow_private {
        return fail(
            field,
            format!("{ip} is a private address, which this service does not allow"),
        );
    }
    Ok(())
}

fn check_nats(prefix: &str, nats: &NatsEndpoint) -> Check {
    if nats.urls.is_empty() || nats.urls.len() > MAX_NATS_URLS {
        return fail(format!("{prefix}.urls"), format!("1-{MAX_NATS_URLS} URLs"));
    }
    for (i, url) in nats.urls.iter().enumerate() {
        let field = format!("{prefix}.urls[{i}]");
        if url.len() > MAX_URL_CHARS {
            return fail(field, format!("longer than {MAX_URL_CHARS} characters"));
        }
        let Ok(parsed) = url.parse::<Uri>() else {
            return fail(field, "not a valid URL (e.g. nats://nats.example.com:4222)");
        };
        if !matches!(parsed.scheme_str(), Some("nats" | "tls" | "ws" | "wss")) {
            return fail(field, "must start with nats://, tls://, ws:// or wss://");
        }
        match parsed.authority() {
            None => return fail(field, "has no host"),
            Some(a) if a.host().is_empty() => return fail(field, "has no host"),
            Some(a) if a.as_str().contains('@') => {
                return fail(
                    field,
                    format!("must not carry credentials; use {prefix}.user, .password, .token or .creds"),
                );
            }
            Some(_) => {}
        }
    }
    let too_long = |field: &str, value: &Option<String>, max: usize| match value {
        Some(v) if v.len() > max => fail(format!("{prefix}.{field}"), format!("longer than {max} bytes")),
        _ => Ok(()),
    };
    too_long("user", &nats.user, MAX_NATS_USER_BYTES)?;
    too_long("password", &nats.password, MAX_NATS_SECRET_BYTES)?;
    too_long("token", &nats.token, MAX_NATS_SECRET_BYTES)?;
    too_long("creds", &nats.creds, MAX_NATS_CREDS_BYTES)?;
    if nats.password.is_some() && nats.user.is_none() {
        return fail(format!("{prefix}.user"), "required with a password");
    }
    Ok(())
}

/// A NATS subject: `.`-separated non-empty tokens without spaces; with `wildcards`, `*` as a whole
/// token and `>` as the whole last token.
fn check_subject(field: &str, subject: &str, wildcards: bool) -> Check {
    if subject.is_empty() || subject.len() > MAX_SUBJECT_CHARS {
        return fail(field, format!("must be 1-{MAX_SUBJECT_CHARS} bytes"));
    }
    let tokens: Vec<&str> = subject.split('.').collect();
    for (i, t) in tokens.iter().enumerate() {
        if t.is_empty() || t.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return fail(field, "tokens between dots must be non-empty, without spaces");
        }
        let wild = *t == "*" || (*t == ">" && i == tokens.len() - 1);
        if wild && !wildcards {
            return fail(field, "wildcards (* and >) are not allowed in a subject to publish to");
        }
        if !wild && (t.contains('*') || t.contains('>')) {
            return fail(field, "* and > must be whole tokens (> only the last)");
        }
    }
    if subject.starts_with("$JS.") || subject.starts_with("_INBOX.") {
        return fail(field, "$JS. and _INBOX. subjects are NATS's own");
    }
    Ok(())
}

fn check_stream(stream: &str) -> Check {
    let ok = (1..=64).contains(&stream.len())
        && stream
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        fail("source.stream", "1-64 characters of [A-Za-z0-9_-]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_addresses() {
        let deny = TargetPolicy::default();
        let allow = TargetPolicy {
            allow_loopback: true,
            allow_private: true,
        };
        for url in [
            "http://169.254.169.254/latest",
            "http://[fe80::1]/",
            "http://0.0.0.0/",
            "http://[fd00:ec2::254]/",
            "http://100.100.100.200/latest/meta-data",
        ] {
            assert!(check_webhook_url(url, allow).is_err(), "{url}");
        }
        for url in [
            "http://127.0.0.1:8080/",
            "http://localhost/x",
            "http://[::1]/",
            "http://10.1.2.3/",
            "http://[::ffff:127.0.0.1]/",
        ] {
            assert!(check_webhook_url(url, deny).is_err(), "{url}");
            assert!(check_webhook_url(url, allow).is_ok(), "{url}");
        }
        for url in ["https://hooks.example.com/a?b=c", "http://93.184.216.34:8443/"] {
            assert!(check_webhook_url(url, deny).is_ok(), "{url}");
        }
        for url in [
            "ftp://example.com/",
            "example.com/x",
            "https://user:pw@example.com/",
            "https:///x",
        ] {
            assert!(check_webhook_url(url, allow).is_err(), "{url}");
        }
    }

    #[test]
    fn subjects() {
        assert!(check_subject("s", "a.b.c", false).is_ok());
        assert!(check_subject("s", "a.*.>", true).is_ok());
        for bad in ["a..b", "a b", ".a", "a.>.b", "a.b*", ""] {
            assert!(check_subject("s", bad, true).is_err(), "{bad}");
        }
        assert!(check_subject("s", "a.*", false).is_err());
    }

    #[test]
    fn nats_urls() {
        let ep = |urls: &[&str]| NatsEndpoint {
            urls: urls.iter().map(|u| u.to_string()).collect(),
            ..Default::default()
        };
        assert!(check_nats("t", &ep(&["nats://127.0.0.1:4222", "tls://n.example.com:4222"])).is_ok());
        assert!(check_nats("t", &ep(&[])).is_err());
        assert!(check_nats("t", &ep(&["http://x:4222"])).is_err());
        assert!(check_nats("t", &ep(&["nats://u:p@x:4222"])).is_err());
    }
}
