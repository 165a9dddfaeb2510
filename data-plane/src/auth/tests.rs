//! Every authorization decision per authentication mode, from one set of rules.

use std::collections::HashSet;

use common::custom_auth::{CustomAuth, CustomIdentity, CustomPermission, Effect, IdentityType, PermitAction, SignMode};
use common::quotas::Quotas;
use common::signing::mqtt_password;
use common::snapshot::{AccessKeyGrant, DeviceCredentialEntry, InstanceConfig, Snapshot, SnapshotContent};
use common::token::{TokenAction, TokenClaims, TokenError, TokenSigner};

use super::*;
use crate::directory::Directories;

const INST: &str = "mqtt-authunittest";
const CLIENT: &str = "GID_alpha@@@dev1";

fn signer() -> TokenSigner {
    TokenSigner::from_seed("k1", &[3u8; 32])
}

fn token(act: TokenAction, res: &[&str], jti: &str) -> String {
    let now = common::time::now_ms();
    signer().sign(&TokenClaims {
        jti: jti.into(),
        iid: INST.into(),
        ak: "AK".into(),
        res: res.iter().map(|s| s.to_string()).collect(),
        act,
        iat_ms: now,
        exp_ms: now + 3_600_000,
    })
}

fn directory(enabled: bool, revoked: &[&str], groups: &[&str]) -> std::sync::Arc<Directory> {
    directory_with(enabled, revoked, groups, CustomAuth::default())
}

fn directory_with(
    enabled: bool,
    revoked: &[&str],
    groups: &[&str],
    custom_auth: CustomAuth,
) -> std::sync::Arc<Directory> {
    let dirs = Directories::new(None);
    let inst = InstanceConfig {
        rules: Vec::new(),
        custom_auth,
        id: INST.into(),
        name: "auth".into(),
        quotas: Quotas::default(),
        reject_duplicate_client_id: false,
        parent_topics: vec!["T".into()],
        group_ids: groups.iter().map(|g| g.to_string()).collect(),
        access_keys: vec![AccessKeyGrant {
            access_key_id: "AK".into(),
            access_key_secret: "SK".into(),
            enabled,
        }],
        device_credentials: vec![DeviceCredentialEntry {
            client_id: CLIENT.into(),
            device_access_key_id: "DC.1".into(),
            device_access_key_secret: "DS".into(),
        }],
        revoked_tokens: revoked
            .iter()
            .map(|j| common::snapshot::RevokedToken {
                jti: j.to_string(),
                exp_ms: i64::MAX,
            })
            .collect(),
    };
    let content = SnapshotContent {
        rule_policy: Default::default(),
        token_keys: vec![signer().public_key().clone()],
        instances: vec![inst],
    };
    dirs.apply_snapshot(Snapshot::new(1, content)).unwrap();
    dirs.load()
}

fn connect(dir: &Directory, user: &str, pass: &[u8]) -> Result<Principal, AuthError> {
    authenticate(dir, user, pass, CLIENT, common::time::now_ms())
}

/// The credential of a successful CONNECT in `mode` ("Signature", "DeviceCredential" or "Token";
/// `token_pass` is the Token-mode password).
fn credential(dir: &Directory, mode: &str, token_pass: &str) -> Credential {
    let (user, pass) = match mode {
        "Signature" => (format!("Signature|AK|{INST}"), mqtt_password("SK", CLIENT)),
        "DeviceCredential" => (format!("DeviceCredential|DC.1|{INST}"), mqtt_password("DS", CLIENT)),
        _ => (format!("Token|AK|{INST}"), token_pass.to_string()),
    };
    connect(dir, &user, pass.as_bytes()).unwrap().credential
}

#[test]
fn every_mode_authenticates_and_forged_credentials_do_not() {
    let dir = directory(true, &[], &["GID_alpha"]);
    let sig = mqtt_password("SK", CLIENT);
    assert_eq!(
        connect(&dir, &format!("Signature|AK|{INST}"), sig.as_bytes())
            .unwrap()
            .credential
            .mode,
        Mode::Signature
    );
    assert_eq!(
        connect(&dir, &format!("Signature|AK|{INST}"), b"forged").err(),
        Some(AuthError::Signature)
    );
    let dc = mqtt_password("DS", CLIENT);
    assert_eq!(
        connect(&dir, &format!("DeviceCredential|DC.1|{INST}"), dc.as_bytes())
            .unwrap()
            .credential
            .mode,
        Mode::DeviceCredential
    );
    let pass = format!(
        "R|{}|W|{}",
        token(TokenAction::R, &["T/+"], "r"),
        token(TokenAction::W, &["T/x"], "w")
    );
    let p = connect(&dir, &format!("Token|AK|{INST}"), pass.as_bytes()).unwrap();
    assert_eq!(p.credential.mode, Mode::Token);
    let revoked = directory(true, &["r"], &["GID_alpha"]);
    assert_eq!(
        connect(&revoked, &format!("Token|AK|{INST}"), pass.as_bytes()).err(),
        Some(AuthError::Token(TokenError::Revoked))
    );
    assert_eq!(
        connect(&dir, &format!("Token|AK|{INST}"), b"R|garbage").err(),
        Some(AuthError::Token(TokenError::Malformed))
    );
    let no_group = directory(true, &[], &["GID_other1"]);
    assert_eq!(
        connect(&no_group, &format!("Signature|AK|{INST}"), sig.as_bytes()).err(),
        Some(AuthError::UnknownGroup)
    );
}

#[test]
fn publish_and_subscribe_decisions_per_mode() {
    let dir = directory(true, &[], &["GID_alpha"]);
    let inst = dir.instances.get(INST).unwrap();
    let sig = credential(&dir, "Signature", "");
    assert_eq!(sig.may_publish(inst, CLIENT, "T/any/thing"), Ok(()));
    assert_eq!(
        sig.may_publish(inst, CLIENT, "Nope/x"),
        Err(Denied::NotAuthorized),
        "unknown parent topic"
    );
    assert_eq!(sig.may_publish(inst, CLIENT, "T/+"), Err(Denied::TopicInvalid));
    assert_eq!(sig.may_subscribe(inst, CLIENT, "T/#"), Ok(()));
    assert_eq!(sig.may_subscribe(inst, CLIENT, "$share/g/T/#"), Ok(()));
    assert_eq!(sig.may_subscribe(inst, CLIENT, "$SYS/#"), Err(Denied::NotAuthorized));
    let pass = format!(
        "R|{}|W|{}",
        token(TokenAction::R, &["T/+"], "r"),
        token(TokenAction::W, &["T/x"], "w")
    );
    let tok = credential(&dir, "Token", &pass);
    assert_eq!(tok.may_publish(inst, CLIENT, "T/x"), Ok(()));
    assert_eq!(
        tok.may_publish(inst, CLIENT, "T/y"),
        Err(Denied::Token(TokenError::ResourceMismatch, TokenAction::W))
    );
    assert_eq!(tok.may_subscribe(inst, CLIENT, "T/a"), Ok(()));
    assert_eq!(tok.may_subscribe(inst, CLIENT, "$share/g/T/+"), Ok(()));
    assert_eq!(
        tok.may_subscribe(inst, CLIENT, "T/#"),
        Err(Denied::Token(TokenError::ResourceMismatch, TokenAction::R)),
        "a filter wider than the resource is refused"
    );
    assert_eq!(
        tok.may_subscribe(inst, CLIENT, "$share/g/T/#"),
        Err(Denied::Token(TokenError::ResourceMismatch, TokenAction::R))
    );
    let write_only = format!("W|{}", token(TokenAction::W, &["T/#"], "w2"));
    let wo = credential(&dir, "Token", &write_only);
    assert_eq!(
        wo.may_subscribe(inst, CLIENT, "T/a"),
        Err(Denied::Token(TokenError::ActionMismatch, TokenAction::R))
    );
    let open = Credential::open();
    assert_eq!(open.may_publish(inst, CLIENT, "T/x"), Ok(()));
}

#[test]
fn configuration_changes_withdraw_what_they_should() {
    let dir = directory(true, &[], &["GID_alpha"]);
    let now = common::time::now_ms();
    let sig = credential(&dir, "Signature", "");
    assert_eq!(sig.still_valid(&dir, INST, CLIENT, now), Ok(()));
    assert_eq!(
        sig.still_valid(&directory(false, &[], &["GID_alpha"]), INST, CLIENT, now),
        Err(Withdrawn::Credential)
    );
    assert_eq!(
        sig.still_valid(&directory(true, &[], &["GID_beta"]), INST, CLIENT, now),
        Err(Withdrawn::Group)
    );
    assert_eq!(
        sig.still_valid(&Directory::empty(), INST, CLIENT, now),
        Err(Withdrawn::InstanceGone)
    );
    let dc = credential(&dir, "DeviceCredential", "");
    assert_eq!(dc.still_valid(&dir, INST, CLIENT, now), Ok(()));
    assert_eq!(
        dc.still_valid(&dir, INST, "GID_alpha@@@other", now),
        Err(Withdrawn::Credential)
    );
    let pass = format!("RW|{}", token(TokenAction::RW, &["T/#"], "t1"));
    let tok = credential(&dir, "Token", &pass);
    assert_eq!(
        tok.still_valid(&directory(true, &["t1"], &["GID_alpha"]), INST, CLIENT, now),
        Err(Withdrawn::Token(TokenError::Revoked, TokenAction::RW))
    );
    assert_eq!(
        tok.still_valid(&directory(false, &[], &["GID_alpha"]), INST, CLIENT, now),
        Err(Withdrawn::Token(TokenError::PermissionInvalid, TokenAction::RW))
    );
    assert_eq!(
        tok.still_valid(&dir, INST, CLIENT, now + 7_200_000),
        Err(Withdrawn::Token(TokenError::Expired, TokenAction::RW)),
        "an expired token no longer holds (a will due later is refused)"
    );
    let _ = HashSet::<u8>::new();
}

fn custom_auth(secret: &str, blacklist: &[&str]) -> CustomAuth {
    CustomAuth {
        identities: vec![
            CustomIdentity {
                username: "fleet".into(),
                secret: secret.into(),
                identity_type: IdentityType::User,
                client_id: None,
                sign_mode: SignMode::Origin,
            },
            CustomIdentity {
                username: "pump".into(),
                secret: secret.into(),
                identity_type: IdentityType::Client,
                client_id: Some("pump-1".into()),
                sign_mode: SignMode::Signed,
            },
        ],
        permissions: vec![CustomPermission {
            identity_type: IdentityType::User,
            identity: "fleet".into(),
            topic: "T/fleet/#".into(),
            permit_action: PermitAction::PubSub,
            effect: Effect::Allow,
        }],
        connect_blacklist: blacklist.iter().map(|c| c.to_string()).collect(),
    }
}

#[test]
fn custom_identities_connect_in_both_sign_modes_and_only_within_their_permissions() {
    let dir = directory_with(true, &[], &["GID_alpha"], custom_auth("s3", &[]));
    let fleet = authenticate(&dir, "fleet", b"s3", "any-device-7", 0).unwrap();
    assert_eq!(
        (fleet.credential.mode, fleet.instance.id.as_str()),
        (Mode::Custom, INST)
    );
    assert_eq!(
        authenticate(&dir, "fleet", b"s4", "x", 0).err(),
        Some(AuthError::CustomIdentity)
    );
    assert_eq!(
        authenticate(&dir, "nobody", b"s3", "x", 0).err(),
        Some(AuthError::CustomIdentity)
    );
    let signed = mqtt_password("s3", "pump-1");
    assert!(authenticate(&dir, "pump", signed.as_bytes(), "pump-1", 0).is_ok());
    assert_eq!(
        authenticate(&dir, "pump", mqtt_password("s3", "pump-2").as_bytes(), "pump-2", 0).err(),
        Some(AuthError::CustomIdentity),
        "a CLIENT identity is its own client ID's only"
    );

    let inst = dir.instances.get(INST).unwrap();
    let c = &fleet.credential;
    assert_eq!(c.may_publish(inst, "any-device-7", "T/fleet/a"), Ok(()));
    assert_eq!(
        c.may_publish(inst, "any-device-7", "T/other"),
        Err(Denied::NotAuthorized)
    );
    assert_eq!(c.may_subscribe(inst, "any-device-7", "T/fleet/+"), Ok(()));
    assert_eq!(c.may_subscribe(inst, "any-device-7", "T/#"), Err(Denied::NotAuthorized));
    assert!(c.may_receive(inst, "any-device-7", "T/fleet/x"));
    assert!(!c.may_receive(inst, "any-device-7", "T/p2p/any-device-7"));
}

#[test]
fn the_connect_blacklist_refuses_and_withdraws_every_mode() {
    let dir = directory_with(true, &[], &["GID_alpha"], custom_auth("s3", &[]));
    let now = common::time::now_ms();
    let sig = credential(&dir, "Signature", "");
    let fleet = authenticate(&dir, "fleet", b"s3", CLIENT, now).unwrap().credential;
    let listed = directory_with(true, &[], &["GID_alpha"], custom_auth("s3", &[CLIENT]));
    assert_eq!(
        connect(
            &listed,
            &format!("Signature|AK|{INST}"),
            mqtt_password("SK", CLIENT).as_bytes()
        )
        .err(),
        Some(AuthError::Blacklisted)
    );
    assert_eq!(
        authenticate(&listed, "fleet", b"s3", CLIENT, now).err(),
        Some(AuthError::Blacklisted)
    );
    assert_eq!(sig.still_valid(&listed, INST, CLIENT, now), Err(Withdrawn::Blacklisted));
    assert_eq!(
        fleet.still_valid(&listed, INST, CLIENT, now),
        Err(Withdrawn::Blacklisted)
    );
    // A changed secret or a deleted identity withdraws the connections made before.
    assert_eq!(fleet.still_valid(&dir, INST, CLIENT, now), Ok(()));
    let changed = directory_with(true, &[], &["GID_alpha"], custom_auth("new", &[]));
    assert_eq!(
        fleet.still_valid(&changed, INST, CLIENT, now),
        Err(Withdrawn::Credential)
    );
    let none = directory(true, &[], &["GID_alpha"]);
    assert_eq!(fleet.still_valid(&none, INST, CLIENT, now), Err(Withdrawn::Credential));
}
