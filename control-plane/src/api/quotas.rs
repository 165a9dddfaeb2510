//! API view of `common::quotas::Quotas`: the full set in answers, a partial set in requests (missing
//! fields keep their current or default value).

use common::quotas::Quotas;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ApiError;

macro_rules! quota_types {
    ($($field:ident: $ty:ty),* $(,)?) => {
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
            /// Applies the patch; every limit must be at least 1.
            pub fn apply(&self, mut q: Quotas) -> Result<Quotas, ApiError> {
                $(
                    if let Some(v) = self.$field {
                        if v < 1 {
                            return Err(ApiError::invalid(
                                format!("quotas.{}", camel(stringify!($field))),
                                "must be at least 1",
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

quota_types! {
    max_parent_topics: u32,
    max_rules: u32,
    max_topic_length: u32,
    max_client_id_length: u32,
    max_subscriptions_per_client: u32,
    max_wildcard_subscriptions_per_parent_topic: u32,
    max_message_size: u32,
    max_connections: u32,
    max_messages_per_second: u32,
    offline_retention_secs: u64,
    max_offline_messages: u64,
    max_offline_bytes: u64,
    max_persistent_sessions: u32,
    max_retained_messages: u32,
    max_retained_bytes: u64,
    max_token_resources: u32,
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
