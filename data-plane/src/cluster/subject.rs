//! MQTT topics as NATS subjects, and the names of everything the cluster keeps in NATS. A topic of
//! instance `i` travels on `<prefix>.t.<i>.<level>.<level>...`: each MQTT level is one NATS token,
//! escaped reversibly so that no topic can produce a token NATS treats specially (`.`, `*`, `>`,
//! white space, an empty token) and no two topics share a subject. A filter maps the same way with
//! `+` -> `*` and `#` -> `>`. Topics whose subject would be too long travel on `<prefix>.l.<i>`
//! with the topic inside the message, and every broker with interest in the instance takes them.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Subjects longer than this are not used (nats-server refuses control lines over 4 KiB by
/// default; headroom for the rest of the line).
pub const MAX_SUBJECT_LEN: usize = 3_000;

/// The escape character. It, and every byte NATS cannot carry inside a token, become `~XX`
/// (upper-case hex of the byte); an empty level becomes `~` alone.
const ESCAPE: u8 = b'~';

fn plain(b: u8) -> bool {
    b.is_ascii_graphic() && !matches!(b, b'.' | b'*' | b'>' | ESCAPE)
}

/// One MQTT level as one NATS token.
pub fn escape_level(level: &str, out: &mut String) {
    if level.is_empty() {
        out.push('~');
        return;
    }
    for &b in level.as_bytes() {
        if plain(b) {
            out.push(b as char);
        } else {
            out.push('~');
            out.push_str(&format!("{b:02X}"));
        }
    }
}

/// The inverse of `escape_level`; None for a token `escape_level` cannot produce (the mapping is
/// proven reversible by the tests; routing never needs to go back).
#[cfg(test)]
pub fn unescape_level(token: &str) -> Option<String> {
    if token == "~" {
        return Some(String::new());
    }
    let bytes = token.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == ESCAPE {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The names of one cluster's subjects, streams and buckets (the prefix keeps clusters that share
/// a NATS system apart).
#[derive(Debug, Clone)]
pub struct Names {
    prefix: String,
}

impl Names {
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_string(),
        }
    }

    /// The subject of a topic, or None when it would be too long (then `long_subject`).
    pub fn topic(&self, instance: &str, topic: &str) -> Option<String> {
        let mut s = format!("{}.t.{}", self.prefix, instance);
        for level in topic.split('/') {
            s.push('.');
            escape_level(level, &mut s);
        }
        (s.len() <= MAX_SUBJECT_LEN).then_some(s)
    }

    /// The subject(s) a filter listens on: `#` also matches its parent level, which NATS's `>`
    /// does not, so `a/#` needs `a` as well. None when too long (then `long_subject`).
    pub fn filter(&self, instance: &str, filter: &str) -> Option<Vec<String>> {
        let mut s = format!("{}.t.{}", self.prefix, instance);
        let mut parent = None;
        for level in filter.split('/') {
            match level {
                "+" => s.push_str(".*"),
                "#" => {
                    parent = Some(s.clone());
                    s.push_str(".>");
                }
                _ => {
                    s.push('.');
                    escape_level(level, &mut s);
                }
            }
        }
        if s.len() > MAX_SUBJECT_LEN {
            return None;
        }
        // `#` alone matches every topic, and a parent of just the prefix is no topic at all.
        let root = format!("{}.t.{}", self.prefix, instance);
        Some(match parent.filter(|p| *p != root) {
            Some(p) => vec![s, p],
            None => vec![s],
        })
    }

    /// Where topics too long for a subject of their own travel, per instance.
    pub fn long_subject(&self, instance: &str) -> String {
        format!("{}.l.{}", self.prefix, instance)
    }

    /// The subject a broker node listens on for what is addressed to it (P2P deliveries to its
    /// clients, takeovers, persistent-session notices).
    pub fn node(&self, node: &str) -> String {
        format!("{}.n.{}", self.prefix, key_token(node))
    }

    /// Where a broker says that its NATS connection came back: notices it sent just before may
    /// have been lost, so every broker reads its sessions' inboxes again.
    pub fn reconnected(&self) -> String {
        format!("{}.reconnected", self.prefix)
    }

    /// The inbox stream of an instance, and a client's subject in it.
    pub fn inbox_stream(&self, instance: &str) -> String {
        format!("{}_INBOX_{}", self.prefix.to_uppercase(), instance.replace('-', "_"))
    }

    pub fn inbox_subject(&self, instance: &str, client: &str) -> String {
        format!("{}.i.{}.{}", self.prefix, instance, key_token(client))
    }

    pub fn inbox_subjects(&self, instance: &str) -> String {
        format!("{}.i.{}.*", self.prefix, instance)
    }

    /// Key-value buckets.
    pub fn bucket(&self, what: &str) -> String {
        format!("{}_{}", self.prefix, what)
    }

    /// A key made of an instance and a name (client ID, topic), valid in a KV bucket.
    pub fn key(&self, instance: &str, name: &str) -> String {
        format!("{instance}.{}", key_token(name))
    }
}

/// Any string as one token that KV keys and subjects accept (`[A-Za-z0-9_-]`): URL-safe Base64,
/// with a `k` in front so it never starts with `-` or is empty.
pub fn key_token(name: &str) -> String {
    format!("k{}", URL_SAFE_NO_PAD.encode(name.as_bytes()))
}

/// The inverse of `key_token`.
pub fn from_key_token(token: &str) -> Option<String> {
    let raw = URL_SAFE_NO_PAD.decode(token.strip_prefix('k')?).ok()?;
    String::from_utf8(raw).ok()
}

/// Splits a `Names::key` back into (instance, name).
pub fn parse_key(key: &str) -> Option<(&str, String)> {
    let (instance, token) = key.split_once('.')?;
    Some((instance, from_key_token(token)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n() -> Names {
        Names::new("mq")
    }

    #[test]
    fn levels_escape_reversibly_and_never_to_a_special_token() {
        let odd = [
            "", ".", "*", ">", "a b", "a.b", "~", "~41", "\t", "ü", "$SYS", "a>b", "x*", "#x", "**", "%20",
        ];
        let mut seen = std::collections::HashSet::new();
        for level in odd {
            let mut t = String::new();
            escape_level(level, &mut t);
            assert!(!t.is_empty() && t != "*" && t != ">", "{level:?} -> {t:?}");
            assert!(!t.contains(['.', ' ', '\t']), "{level:?} -> {t:?}");
            assert_eq!(unescape_level(&t).as_deref(), Some(level));
            assert!(seen.insert(t), "two levels share a token");
        }
    }

    #[test]
    fn topics_and_filters_map_to_subjects_within_their_instance() {
        assert_eq!(n().topic("mqtt-a", "T/x").unwrap(), "mq.t.mqtt-a.T.x");
        assert_eq!(n().topic("mqtt-a", "/a//b").unwrap(), "mq.t.mqtt-a.~.a.~.b");
        assert_eq!(n().topic("mqtt-a", "T/a.b/*").unwrap(), "mq.t.mqtt-a.T.a~2Eb.~2A");
        assert_eq!(n().filter("mqtt-a", "T/+/x").unwrap(), ["mq.t.mqtt-a.T.*.x"]);
        assert_eq!(
            n().filter("mqtt-a", "T/#").unwrap(),
            ["mq.t.mqtt-a.T.>", "mq.t.mqtt-a.T"]
        );
        assert_eq!(n().filter("mqtt-a", "#").unwrap(), ["mq.t.mqtt-a.>"]);
        // A topic can never land in another instance's subjects, whatever it holds.
        let sneaky = n().topic("mqtt-a", "x.t.mqtt-b.T").unwrap();
        assert!(sneaky.starts_with("mq.t.mqtt-a.") && !sneaky.contains(".t.mqtt-b."));
        let long = "a/".repeat(2000);
        assert!(n().topic("mqtt-a", &long).is_none());
        assert_eq!(n().long_subject("mqtt-a"), "mq.l.mqtt-a");
    }

    #[test]
    fn keys_hold_any_name() {
        for name in ["GID_x@@@dev-1", "a.b", "", "T/#", "ü ~"] {
            let key = n().key("mqtt-a", name);
            assert!(
                key.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)),
                "{key}"
            );
            assert_eq!(parse_key(&key), Some(("mqtt-a", name.to_string())));
        }
    }
}
