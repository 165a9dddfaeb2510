//! API view of `common::quotas::Quotas`: the full set in answers, a partial set in requests (missing
//! fields keep their current or default value). Each limit is between 1 and its maximum: the
//! maxima keep every client ID and topic within what the broker-sync events and the database take
//! (1024), and every message within the broker's default largest frame (1 MiB).

use common::quotas::Quotas;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ApiError;

macro_rules! quota_types {
    ($($field:ident: $ty:ty = ..=$max:expr),* $(,)?) => {
        /// Per-instance limits (docs/spec.md section 2).
        #[derive(Debug, Clone, Serialize, ToSchema)]
        #[serde(rename_all = "camelCase")]
        pub struct QuotasView { $(pub $field: $ty,)* }

        /// Limits to change; omitted fields are left as they are.
        #[derive(Debug, Clone, Default, Deserialize, ToSchema)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        pub struct QuotasPatch { $(pub $field: Option<$ty>,)* }

        impl From<&Quotas> for QuotasView {
            fn from(q: &Quotas) -> Self { Self { $($field: q.$field,)* } }
        }

        impl QuotasPatch {
            /// Applies the patch; every limit must be between 1 and its maximum.
            pub fn apply(&self, mut q: Quotas) -> Result<Quotas, ApiError> {
                $(
                    if let Some(v) = self.$field {
                        if !(1..=$max).contains(&v) {
                            return Err(ApiError::invalid(
                                format!("quotas.{}", camel(stringify!($field))),
                                format!("must be 1 to {}", $max),
                            ));
                        }
                        q.$field = v;
                    }
                )*
                Ok(q)
            }
        }
    };
}

/// Upper bound of `maxTopicLength` and `maxClientIdLength`.
pub const MAX_NAME_LENGTH: u32 = 1024;
/// Upper bound of `maxMessageSize`: the broker's default largest MQTT frame.
pub const MAX_MESSAGE_SIZE: u32 = 1 << 20;

quota_types! {
    max_parent_topics: u32 = ..=u32::MAX,
    max_rules: u32 = ..=u32::MAX,
    max_topic_length: u32 = ..=MAX_NAME_LENGTH,
    max_client_id_length: u32 = ..=MAX_NAME_LENGTH,
    max_subscriptions_per_client: u32 = ..=u32::MAX,
    max_wildcard_subscriptions_per_parent_topic: u32 = ..=u32::MAX,
    max_message_size: u32 = ..=MAX_MESSAGE_SIZE,
    max_connections: u32 = ..=u32::MAX,
    max_messages_per_second: u32 = ..=u32::MAX,
    offline_retention_secs: u64 = ..=u64::MAX,
    max_offline_messages: u64 = ..=u64::MAX,
    max_offline_bytes: u64 = ..=u64::MAX,
    max_persistent_sessions: u32 = ..=u32::MAX,
    max_retained_messages: u32 = ..=u32::MAX,
    max_retained_bytes: u64 = ..=u64::MAX,
    max_token_resources: u32 = ..=u32::MAX,
}

/// `max_parent_topics` -> `maxParentTopics`, the JSON name of a field.
fn camel(snake: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in snake.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}
