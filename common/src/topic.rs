//! MQTT topic names and filters under the parent-topic model (or plain MQTT): validation, `+`/`#` matching,
//! shared-subscription (`$share/<group>/<filter>`) and P2P (`<parent>/p2p/<clientId>`) parsing.

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TopicError {
    #[error("topic is empty")]
    Empty,
    #[error("topic is longer than {0} characters")]
    TooLong(usize),
    #[error("topic name may not contain wildcards")]
    WildcardInName,
    #[error("invalid wildcard placement")]
    BadWildcard,
    #[error("topic may not contain NUL")]
    Nul,
    #[error("the first level must be a parent topic")]
    NoParent,
    #[error("invalid shared subscription")]
    BadShare,
}

/// The first level of a topic or filter: its parent topic.
pub fn parent_of(topic: &str) -> &str {
    topic.split('/').next().unwrap_or("")
}

/// Which topic rules apply: the product's (the first level is a parent topic; wildcards stay
/// inside one) or plain MQTT (the development listener, for standard client test suites).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rules {
    Parented,
    Plain,
}

/// Checks a topic name for PUBLISH: non-empty, at most `max_len` chars, no wildcards, no NUL, and
/// under `Rules::Parented` a non-empty first level.
pub fn check_name(topic: &str, max_len: usize, rules: Rules) -> Result<(), TopicError> {
    if topic.is_empty() {
        return Err(TopicError::Empty);
    }
    if topic.chars().count() > max_len {
        return Err(TopicError::TooLong(max_len));
    }
    if topic.contains('\0') {
        return Err(TopicError::Nul);
    }
    if topic.contains(['+', '#']) {
        return Err(TopicError::WildcardInName);
    }
    if rules == Rules::Parented && parent_of(topic).is_empty() {
        return Err(TopicError::NoParent);
    }
    Ok(())
}

/// Checks a topic filter for SUBSCRIBE (without any `$share/` prefix): wildcards only as whole
/// levels, `#` last, and under `Rules::Parented` a literal first level (a parent topic).
pub fn check_filter(filter: &str, max_len: usize, rules: Rules) -> Result<(), TopicError> {
    if filter.is_empty() {
        return Err(TopicError::Empty);
    }
    if filter.chars().count() > max_len {
        return Err(TopicError::TooLong(max_len));
    }
    if filter.contains('\0') {
        return Err(TopicError::Nul);
    }
    let levels: Vec<&str> = filter.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        let wildcard = level.contains(['+', '#']);
        if wildcard && level.len() != 1 {
            return Err(TopicError::BadWildcard);
        }
        if *level == "#" && i != levels.len() - 1 {
            return Err(TopicError::BadWildcard);
        }
    }
    let parent = levels[0];
    if rules == Rules::Parented && (parent.is_empty() || parent == "+" || parent == "#") {
        return Err(TopicError::NoParent);
    }
    Ok(())
}

/// `check_name` under the product's rules.
pub fn validate_topic_name(topic: &str, max_len: usize) -> Result<(), TopicError> {
    check_name(topic, max_len, Rules::Parented)
}

/// `check_filter` under the product's rules.
pub fn validate_topic_filter(filter: &str, max_len: usize) -> Result<(), TopicError> {
    check_filter(filter, max_len, Rules::Parented)
}

/// True when the filter contains `+` or `#` (counts against the per-parent wildcard quota).
pub fn is_wildcard(filter: &str) -> bool {
    filter.split('/').any(|l| l == "+" || l == "#")
}

/// Standard MQTT matching of a topic name against a filter.
pub fn matches(filter: &str, topic: &str) -> bool {
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(fl), Some(tl)) if fl == tl => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// True when every topic `filter` can match is also matched by `resource`: level by level, a `#`
/// in the filter is covered only by `#`, a `+` only by `+` or `#`, a literal by itself, `+` or `#`.
pub fn filter_covers(resource: &str, filter: &str) -> bool {
    let mut r = resource.split('/');
    let mut f = filter.split('/');
    loop {
        match (r.next(), f.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(fl)) if fl != "#" => {}
            (Some(rl), Some(fl)) if rl == fl => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// True when some topic name matches both filters (a DENY permission that overlaps a subscription
/// would let denied messages through it).
pub fn filters_overlap(a: &str, b: &str) -> bool {
    let mut x = a.split('/');
    let mut y = b.split('/');
    loop {
        match (x.next(), y.next()) {
            (Some("#"), _) | (_, Some("#")) | (None, None) => return true,
            (Some("+"), Some(_)) | (Some(_), Some("+")) => {}
            (Some(l), Some(r)) if l == r => {}
            _ => return false,
        }
    }
}

/// A subscription request split into its optional share group and the real filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionFilter<'a> {
    pub share_group: Option<&'a str>,
    pub filter: &'a str,
}

/// Longest `$share` group name accepted.
pub const MAX_SHARE_GROUP_LEN: usize = 64;

/// Splits `$share/<group>/<filter>`; any other filter is returned unchanged. A group name is 1 to
/// `MAX_SHARE_GROUP_LEN` characters without `/`, `+`, `#` or control characters.
pub fn parse_subscription(raw: &str) -> Result<SubscriptionFilter<'_>, TopicError> {
    match raw.strip_prefix("$share/") {
        None => Ok(SubscriptionFilter {
            share_group: None,
            filter: raw,
        }),
        Some(rest) => {
            let (group, filter) = rest.split_once('/').ok_or(TopicError::BadShare)?;
            let bad_char = |c: char| c == '+' || c == '#' || c.is_control();
            if group.is_empty()
                || group.chars().count() > MAX_SHARE_GROUP_LEN
                || group.contains(bad_char)
                || filter.is_empty()
            {
                return Err(TopicError::BadShare);
            }
            Ok(SubscriptionFilter {
                share_group: Some(group),
                filter,
            })
        }
    }
}

/// The target client ID of a P2P topic `<parent>/p2p/<clientId>` *(compat)*, if it is one.
pub fn p2p_target(topic: &str) -> Option<&str> {
    let mut levels = topic.splitn(3, '/');
    let _parent = levels.next()?;
    if levels.next()? != "p2p" {
        return None;
    }
    levels
        .next()
        .filter(|target| !target.is_empty() && !target.contains('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching() {
        assert!(matches("a/b", "a/b"));
        assert!(matches("a/+", "a/b"));
        assert!(!matches("a/+", "a/b/c"));
        assert!(matches("a/#", "a"));
        assert!(matches("a/#", "a/b/c"));
        assert!(matches("a/+/c", "a/b/c"));
        assert!(!matches("a/b", "a/b/c"));
        assert!(!matches("a/b/c", "a/b"));
        assert!(matches("a/+", "a/"));
    }

    #[test]
    fn filter_subsets() {
        // (resource, filter, covered)
        let table = [
            ("T/#", "T/#", true),
            ("T/#", "T/+", true),
            ("T/#", "T/a/b", true),
            ("T/#", "T", true),
            ("T/+", "T/a", true),
            ("T/+", "T/+", true),
            ("T/+", "T/#", false),
            ("T/+", "T/a/b", false),
            ("T/+", "T", false),
            ("T/a", "T/a", true),
            ("T/a", "T/+", false),
            ("T/a", "T/#", false),
            ("T/+/c", "T/+/c", true),
            ("T/+/c", "T/b/c", true),
            ("T/+/c", "T/b/#", false),
            ("T/a/#", "T/#", false),
            ("T/a/#", "T/a/#", true),
            ("T/a/#", "T/a", true),
            ("T", "T/#", false),
            ("U/#", "T/a", false),
        ];
        for (resource, filter, covered) in table {
            assert_eq!(filter_covers(resource, filter), covered, "{resource} covers {filter}");
        }
    }

    #[test]
    fn filters() {
        assert!(validate_topic_filter("a/+/c/#", 64).is_ok());
        assert_eq!(validate_topic_filter("a/b#", 64), Err(TopicError::BadWildcard));
        assert_eq!(validate_topic_filter("a/#/c", 64), Err(TopicError::BadWildcard));
        assert_eq!(validate_topic_filter("#", 64), Err(TopicError::NoParent));
        assert_eq!(validate_topic_filter(&"a".repeat(65), 64), Err(TopicError::TooLong(64)));
        assert!(validate_topic_filter(&"a".repeat(64), 64).is_ok());
        assert!(is_wildcard("a/+") && is_wildcard("a/#") && !is_wildcard("a/b"));
    }

    #[test]
    fn plain_rules_allow_what_standard_mqtt_does() {
        for name in ["/a", "a", "$SYS/x", "a//b"] {
            assert_eq!(check_name(name, 100, Rules::Plain), Ok(()), "{name}");
        }
        for filter in ["#", "+/+", "/a", "+", "/#"] {
            assert_eq!(check_filter(filter, 100, Rules::Plain), Ok(()), "{filter}");
            assert!(check_filter(filter, 100, Rules::Parented).is_err(), "{filter}");
        }
        assert_eq!(check_filter("a/#/b", 100, Rules::Plain), Err(TopicError::BadWildcard));
        assert_eq!(check_name("a/+", 100, Rules::Plain), Err(TopicError::WildcardInName));
    }

    #[test]
    fn names() {
        assert!(validate_topic_name("a/b", 64).is_ok());
        assert_eq!(validate_topic_name("a/+", 64), Err(TopicError::WildcardInName));
        assert_eq!(validate_topic_name("/a", 64), Err(TopicError::NoParent));
        assert_eq!(parent_of("abc/d/e"), "abc");
    }

    #[test]
    fn shares_and_p2p() {
        let s = parse_subscription("$share/g1/a/b").unwrap();
        assert_eq!((s.share_group, s.filter), (Some("g1"), "a/b"));
        assert_eq!(parse_subscription("a/b").unwrap().share_group, None);
        assert!(parse_subscription("$share/g1").is_err());
        for bad in [
            "$share//a",
            "$share/g+/a",
            "$share/g\0/a",
            "$share/g\u{7}/a",
            "$share/g/",
        ] {
            assert_eq!(parse_subscription(bad), Err(TopicError::BadShare), "{bad:?}");
        }
        let long = format!("$share/{}/a", "g".repeat(MAX_SHARE_GROUP_LEN + 1));
        assert_eq!(parse_subscription(&long), Err(TopicError::BadShare));
        assert_eq!(p2p_target("T/p2p/GID_x@@@d1"), Some("GID_x@@@d1"));
        assert_eq!(p2p_target("T/p2p"), None);
        assert_eq!(p2p_target("T/x/GID_x@@@d1"), None);
        assert_eq!(p2p_target("T/p2p/a/b"), None);
    }

    #[test]
    fn overlapping_filters() {
        for (a, b) in [
            ("T/a", "T/+"),
            ("T/+/x", "T/a/#"),
            ("T/#", "T"),
            ("T/a/b", "T/a/b"),
            ("#", "x/y"),
        ] {
            assert!(filters_overlap(a, b) && filters_overlap(b, a), "{a} {b}");
        }
        for (a, b) in [("T/a", "T/b"), ("T/+", "T/a/b"), ("T/+/x", "T/a/y"), ("T", "T/+")] {
            assert!(!filters_overlap(a, b) && !filters_overlap(b, a), "{a} {b}");
        }
    }
}
