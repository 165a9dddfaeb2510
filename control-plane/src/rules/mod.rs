//! Rules (docs/rules.md): what the API takes and shows (`model`), its checks (`validate`), how target
//! secrets are kept apart from the rest and encrypted (`secrets`), and the rules as the broker
//! snapshot carries them (`snapshot`). The handlers are in `api::rules`, the SQL in `db::rules`.

pub mod model;
pub(crate) mod secrets;
pub mod snapshot;
pub(crate) mod validate;
