//! Name rules of docs/spec.md section 1: instances, parent topics, group IDs, device IDs and client IDs.
//! Both sides use these functions so that the API never accepts a name the broker would refuse.

use thiserror::Error;

/// Why a name was refused. The message is safe to show to users (it never echoes secrets).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NameError {
    #[error("must be {min} to {max} characters long")]
    Length { min: usize, max: usize },
    #[error("may only contain letters, digits, '_' and '-'")]
    Characters,
    #[error("must start with 'GID_' or 'GID-'")]
    GroupPrefix,
    #[error("must have the form <GroupID>@@@<DeviceID>")]
    ClientIdForm,
}

/// Separator between group ID and device ID in a client ID *(compat)*.
pub const CLIENT_ID_SEPARATOR: &str = "@@@";

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

fn check(name: &str, min: usize, max: usize) -> Result<(), NameError> {
    // All allowed characters are ASCII, so byte length equals character length once the charset holds.
    if !name.chars().all(is_name_char) {
        return Err(NameError::Characters);
    }
    if name.len() < min || name.len() > max {
        return Err(NameError::Length { min, max });
    }
    Ok(())
}

/// Instance name: 3-64 chars of `[A-Za-z0-9_-]` (uniqueness is case-insensitive, checked by the store).
pub fn validate_instance_name(name: &str) -> Result<(), NameError> {
    check(name, 3, 64)
}

/// Parent topic: `[A-Za-z0-9_-]`, 1-64 chars (a full topic is at most 64 chars anyway).
pub fn validate_parent_topic(name: &str) -> Result<(), NameError> {
    check(name, 1, 64)
}

/// Group ID: `GID_` or `GID-` prefix (upper case), 7-64 chars of `[A-Za-z0-9_-]`.
pub fn validate_group_id(name: &str) -> Result<(), NameError> {
    check(name, 7, 64)?;
    if !(name.starts_with("GID_") || name.starts_with("GID-")) {
        return Err(NameError::GroupPrefix);
    }
    Ok(())
}

/// Device ID: at least one char of `[A-Za-z0-9_-]`; the client ID bounds the total length.
pub fn validate_device_id(name: &str) -> Result<(), NameError> {
    check(name, 1, 64)
}

/// A parsed `<GroupID>@@@<DeviceID>` client ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientId<'a> {
    pub group_id: &'a str,
    pub device_id: &'a str,
}

/// Parses and validates a client ID of at most `max_len` chars (64 by default, *compat*).
pub fn parse_client_id(client_id: &str, max_len: usize) -> Result<ClientId<'_>, NameError> {
    if client_id.is_empty() || client_id.len() > max_len {
        return Err(NameError::Length { min: 1, max: max_len });
    }
    let (group_id, device_id) = client_id
        .split_once(CLIENT_ID_SEPARATOR)
        .ok_or(NameError::ClientIdForm)?;
    validate_group_id(group_id)?;
    validate_device_id(device_id)?;
    Ok(ClientId { group_id, device_id })
}

/// Instance ids look like `mqtt-<12 lowercase alnum>`.
pub fn is_instance_id(id: &str) -> bool {
    id.strip_prefix("mqtt-")
        .is_some_and(|rest| rest.len() == 12 && rest.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_ids() {
        assert!(validate_group_id("GID_abc").is_ok());
        assert!(validate_group_id("GID-a_b-c").is_ok());
        assert_eq!(validate_group_id("GID_ab"), Err(NameError::Length { min: 7, max: 64 }));
        assert_eq!(validate_group_id("gid_abc"), Err(NameError::GroupPrefix));
        assert_eq!(validate_group_id("XID_abc"), Err(NameError::GroupPrefix));
        assert_eq!(validate_group_id("GID_a.c"), Err(NameError::Characters));
        assert!(validate_group_id(&format!("GID_{}", "a".repeat(60))).is_ok());
        assert!(validate_group_id(&format!("GID_{}", "a".repeat(61))).is_err());
    }

    #[test]
    fn client_ids() {
        let id = parse_client_id("GID_test@@@dev-1", 64).unwrap();
        assert_eq!((id.group_id, id.device_id), ("GID_test", "dev-1"));
        assert_eq!(parse_client_id("GID_test@@dev", 64), Err(NameError::ClientIdForm));
        assert_eq!(
            parse_client_id("GID_test@@@", 64),
            Err(NameError::Length { min: 1, max: 64 })
        );
        assert!(parse_client_id("GID_test@@@a@@@b", 64).is_err());
        assert!(parse_client_id(&format!("GID_test@@@{}", "d".repeat(53)), 64).is_ok());
        assert!(parse_client_id(&format!("GID_test@@@{}", "d".repeat(54)), 64).is_err());
    }

    #[test]
    fn instance_names_and_ids() {
        assert!(validate_instance_name("abc").is_ok());
        assert!(validate_instance_name("ab").is_err());
        assert!(validate_instance_name("a b c").is_err());
        assert!(is_instance_id("mqtt-abcdef123456"));
        assert!(!is_instance_id("mqtt-ABCDEF123456"));
        assert!(!is_instance_id("mqtt-abc"));
    }
}
