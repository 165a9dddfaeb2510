//! Custom authentication of an instance *(compat: Alibaba's custom authorization)*: identities that
//! connect with their own username and secret, topic permissions per identity, and a connect
//! blacklist of client IDs. The types the snapshot carries and the name rules both sides check.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::topic;

/// Longest identity username *(compat)*.
pub const MAX_USERNAME_LEN: usize = 64;
/// Longest identity secret (it is an MQTT password in ORIGIN mode, so bounded like one).
pub const MAX_SECRET_LEN: usize = 256;

/// What one of these names and values is wrong with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CustomAuthError(pub String);

/// A USER identity is shared by any client that presents its username; a CLIENT identity belongs to
/// one client ID. In permissions the identity is the username (USER) or the client ID (CLIENT).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub enum IdentityType {
    User,
    Client,
}

/// How the password proves the secret: ORIGIN = the password is the secret; SIGNED = the password
/// is Base64(HMAC-SHA1(secret, clientId)), as in the Signature mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub enum SignMode {
    Origin,
    Signed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub enum PermitAction {
    Pub,
    Sub,
    PubSub,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub enum Effect {
    Allow,
    Deny,
}

/// Wire names of the enums above (`USER`, `PUB_SUB`, ...), for parsing parameters and storing rows.
macro_rules! wire_names {
    ($ty:ty, $what:literal, $($variant:ident = $name:literal),+) => {
        impl $ty {
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $name),+ }
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        /// For reading a stored name back (as the database hands it over).
        impl TryFrom<String> for $ty {
            type Error = CustomAuthError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                s.parse()
            }
        }
        impl FromStr for $ty {
            type Err = CustomAuthError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($name => Ok(Self::$variant),)+
                    _ => Err(CustomAuthError(format!(concat!("must be ", $what, ", not {:?}"), s))),
                }
            }
        }
    };
}

wire_names!(IdentityType, "USER or CLIENT", User = "USER", Client = "CLIENT");
wire_names!(SignMode, "ORIGIN or SIGNED", Origin = "ORIGIN", Signed = "SIGNED");
wire_names!(
    PermitAction,
    "PUB, SUB or PUB_SUB",
    Pub = "PUB",
    Sub = "SUB",
    PubSub = "PUB_SUB"
);
wire_names!(Effect, "ALLOW or DENY", Allow = "ALLOW", Deny = "DENY");

impl PermitAction {
    pub fn allows_publish(self) -> bool {
        matches!(self, Self::Pub | Self::PubSub)
    }

    pub fn allows_subscribe(self) -> bool {
        matches!(self, Self::Sub | Self::PubSub)
    }
}

/// The custom authentication of one instance, as brokers get it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomAuth {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identities: Vec<CustomIdentity>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub permissions: Vec<CustomPermission>,
    /// Client IDs refused at CONNECT (and disconnected when added), whatever their credentials.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub connect_blacklist: Vec<String>,
}

impl CustomAuth {
    pub fn is_empty(&self) -> bool {
        self.identities.is_empty() && self.permissions.is_empty() && self.connect_blacklist.is_empty()
    }

    /// Every name is well-formed, so a broker never enforces something the API would refuse.
    pub fn validate(&self, max_client_id_len: usize, max_topic_len: usize) -> Result<(), CustomAuthError> {
        for i in &self.identities {
            validate_username(&i.username)?;
            match (i.identity_type, &i.client_id) {
                (IdentityType::Client, Some(c)) => validate_client_id(c, max_client_id_len)?,
                (IdentityType::Client, None) => {
                    return Err(CustomAuthError(format!(
                        "identity {:?}: a CLIENT identity needs its client ID",
                        i.username
                    )));
                }
                (IdentityType::User, _) => {}
            }
        }
        for p in &self.permissions {
            validate_permission_topic(&p.topic, max_topic_len)?;
        }
        for c in &self.connect_blacklist {
            validate_client_id(c, max_client_id_len)?;
        }
        Ok(())
    }
}

/// One identity; the secret is plain here (brokers compare and sign with it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomIdentity {
    pub username: String,
    pub secret: String,
    pub identity_type: IdentityType,
    /// The client ID a CLIENT identity belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    pub sign_mode: SignMode,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomPermission {
    pub identity_type: IdentityType,
    /// A username (USER) or a client ID (CLIENT).
    pub identity: String,
    /// An MQTT topic filter (`+` and `#` allowed).
    pub topic: String,
    pub permit_action: PermitAction,
    pub effect: Effect,
}

/// 1-64 printable ASCII characters without spaces or `|` (a `|` would read as a product mode).
pub fn validate_username(username: &str) -> Result<(), CustomAuthError> {
    let ok =
        (1..=MAX_USERNAME_LEN).contains(&username.len()) && username.bytes().all(|b| b.is_ascii_graphic() && b != b'|');
    if ok {
        Ok(())
    } else {
        Err(CustomAuthError(format!(
            "must be 1-{MAX_USERNAME_LEN} printable ASCII characters without spaces or '|'"
        )))
    }
}

/// 1-256 characters without control characters.
pub fn validate_secret(secret: &str) -> Result<(), CustomAuthError> {
    let ok = !secret.is_empty() && secret.len() <= MAX_SECRET_LEN && !secret.chars().any(char::is_control);
    if ok {
        Ok(())
    } else {
        Err(CustomAuthError(format!(
            "must be 1-{MAX_SECRET_LEN} bytes without control characters"
        )))
    }
}

/// A client ID as MQTT allows it (any form: custom-auth clients need not be `GID@@@device`), up to
/// the instance's limit, without control characters or wildcards.
pub fn validate_client_id(client_id: &str, max_len: usize) -> Result<(), CustomAuthError> {
    let ok = !client_id.is_empty()
        && client_id.chars().count() <= max_len
        && !client_id
            .chars()
            .any(|c| c.is_control() || c == '+' || c == '#' || c == '/');
    if ok {
        Ok(())
    } else {
        Err(CustomAuthError(format!(
            "must be 1-{max_len} characters without control characters, '/', '+' or '#'"
        )))
    }
}

/// A permission's topic: an MQTT filter up to the instance's topic length, not a `$` topic.
pub fn validate_permission_topic(filter: &str, max_len: usize) -> Result<(), CustomAuthError> {
    if filter.starts_with('$') {
        return Err(CustomAuthError("system topics ($...) cannot be granted".into()));
    }
    topic::validate_topic_filter(filter, max_len).map_err(|e| CustomAuthError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_round_trip_and_refuse_others() {
        assert_eq!("PUB_SUB".parse::<PermitAction>(), Ok(PermitAction::PubSub));
        assert_eq!(PermitAction::PubSub.to_string(), "PUB_SUB");
        assert_eq!(serde_json::to_string(&IdentityType::Client).unwrap(), "\"CLIENT\"");
        assert!("user".parse::<IdentityType>().unwrap_err().0.contains("USER or CLIENT"));
    }

    #[test]
    fn names() {
        assert!(validate_username("device-maker_01").is_ok());
        assert!(validate_username("Signature|x|y").is_err());
        assert!(validate_username(&"a".repeat(65)).is_err());
        assert!(validate_username("with space").is_err());
        assert!(validate_client_id("sensor-7", 64).is_ok());
        assert!(validate_client_id("a/b", 64).is_err());
        assert!(validate_permission_topic("T/+/x/#", 64).is_ok());
        assert!(validate_permission_topic("$SYS/#", 64).is_err());
        assert!(validate_permission_topic("T/#/x", 64).is_err());
    }
}
