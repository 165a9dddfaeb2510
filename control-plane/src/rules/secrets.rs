//! Target secrets apart from the rest of a rule. The database keeps source and target without them
//! (readable JSON) and the secrets as one AES-256-GCM ciphertext bound to the rule id, plus the
//! names of the secrets that are set (so answers can say `hasSecret` without decrypting). A secret
//! is named by its field path in the API (`target.secret`, `source.nats.password`, ...).

use std::collections::BTreeMap;

use common::rules::{NatsEndpoint, RuleSource, RuleTarget};

use crate::crypto::{Aad, SecretBox};

/// Secret values by field path.
pub type Secrets = BTreeMap<String, String>;

/// Every secret field the rule's source and target have (set or not), with its path.
fn slots<'a>(
    source: &'a mut RuleSource,
    target: Option<&'a mut RuleTarget>,
) -> Vec<(&'static str, &'a mut Option<String>)> {
    let mut out = Vec::new();
    if let RuleSource::Inflow(i) = source {
        nats_slots(
            ["source.nats.password", "source.nats.token", "source.nats.creds"],
            &mut i.nats,
            &mut out,
        );
    }
    match target {
        Some(RuleTarget::Webhook { secret, .. }) => out.push(("target.secret", secret)),
        Some(RuleTarget::Nats { nats, .. }) => nats_slots(
            ["target.nats.password", "target.nats.token", "target.nats.creds"],
            nats,
            &mut out,
        ),
        _ => {}
    }
    out
}

fn nats_slots<'a>(
    paths: [&'static str; 3],
    nats: &'a mut NatsEndpoint,
    out: &mut Vec<(&'static str, &'a mut Option<String>)>,
) {
    let [password, token, creds] = paths;
    out.push((password, &mut nats.password));
    out.push((token, &mut nats.token));
    out.push((creds, &mut nats.creds));
}

/// The effective secrets of a rule being written: an absent secret keeps the stored value of the
/// same field (`previous`), an empty one removes it, any other value replaces it.
pub fn resolve(source: &mut RuleSource, target: Option<&mut RuleTarget>, previous: &Secrets) {
    for (path, value) in slots(source, target) {
        match value.as_deref() {
            None => *value = previous.get(path).cloned(),
            Some("") => *value = None,
            Some(_) => {}
        }
    }
}

/// Takes the secrets out of a resolved rule, leaving every secret field empty.
pub fn split(source: &mut RuleSource, target: Option<&mut RuleTarget>) -> Secrets {
    slots(source, target)
        .into_iter()
        .filter_map(|(path, value)| value.take().map(|v| (path.to_string(), v)))
        .collect()
}

/// Puts stored secrets back into a rule read from the database.
pub fn restore(source: &mut RuleSource, target: Option<&mut RuleTarget>, secrets: &Secrets) {
    for (path, value) in slots(source, target) {
        *value = secrets.get(path).cloned();
    }
}

/// Marks which secrets are set, for answers: each set field gets an empty value, which the views
/// only turn into `has...: true`.
pub fn mark(source: &mut RuleSource, target: Option<&mut RuleTarget>, names: &[String]) {
    for (path, value) in slots(source, target) {
        *value = names.iter().any(|n| n == path).then(String::new);
    }
}

/// The ciphertext to store (none when the rule has no secret).
pub fn seal(boxed: &SecretBox, rule_id: &str, secrets: &Secrets) -> Option<Vec<u8>> {
    (!secrets.is_empty()).then(|| {
        let json = serde_json::to_vec(secrets).expect("a string map serializes");
        boxed.encrypt(Aad::Rule(rule_id), &json)
    })
}

pub fn open(boxed: &SecretBox, rule_id: &str, sealed: Option<&[u8]>) -> anyhow::Result<Secrets> {
    match sealed {
        None => Ok(Secrets::new()),
        Some(data) => Ok(serde_json::from_slice(&boxed.decrypt(Aad::Rule(rule_id), data)?)?),
    }
}

#[cfg(test)]
mod tests {
    use common::rules::WebhookFormat;

    use super::*;

    fn webhook(secret: Option<&str>) -> RuleTarget {
        RuleTarget::Webhook {
            url: "https://example.com/h".into(),
            format: WebhookFormat::Json,
            secret: secret.map(String::from),
            timeout_ms: 5000,
        }
    }

    #[test]
    fn absent_keeps_empty_removes_a_value_replaces() {
        let mut source = RuleSource::Status { group_ids: vec![] };
        let previous: Secrets = [("target.secret".to_string(), "old-secret".to_string())].into();
        for (given, want) in [
            (None, Some("old-secret")),
            (Some(""), None),
            (Some("new-secret"), Some("new-secret")),
        ] {
            let mut target = webhook(given);
            resolve(&mut source, Some(&mut target), &previous);
            assert_eq!(target, webhook(want), "given {given:?}");
            let taken = split(&mut source, Some(&mut target));
            assert_eq!(target, webhook(None));
            assert_eq!(taken.get("target.secret").map(String::as_str), want);
        }
    }

    #[test]
    fn sealed_secrets_open_only_for_their_rule() {
        let boxed = SecretBox::new([3; 32]);
        let secrets: Secrets = [("target.nats.token".to_string(), "tok".to_string())].into();
        let sealed = seal(&boxed, "rule-1", &secrets).unwrap();
        assert!(!sealed.windows(3).any(|w| w == b"tok"));
        assert_eq!(open(&boxed, "rule-1", Some(&sealed)).unwrap(), secrets);
        assert!(open(&boxed, "rule-2", Some(&sealed)).is_err());
        assert!(seal(&boxed, "rule-1", &Secrets::new()).is_none());
    }
}
