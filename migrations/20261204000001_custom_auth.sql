-- Custom authentication (docs/custom-auth.md): identities that connect with their own username and
-- secret, topic permissions per identity, and a connect blacklist of client IDs, per instance.

-- The username is unique across the deployment: it is what tells a broker which instance a
-- custom-auth CONNECT is for. The secret is AES-256-GCM under the master key, bound to the username.
create table custom_auth_identities (
    username text primary key,
    instance_id text not null references instances (id) on delete cascade,
    identity_type text not null check (identity_type in ('USER', 'CLIENT')),
    client_id text,
    sign_mode text not null check (sign_mode in ('ORIGIN', 'SIGNED')),
    secret_enc bytea not null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    check ((identity_type = 'CLIENT') = (client_id is not null))
);
create index custom_auth_identities_instance on custom_auth_identities (instance_id, username);

-- identity is a username (USER) or a client ID (CLIENT); topic is an MQTT filter.
create table custom_auth_permissions (
    instance_id text not null references instances (id) on delete cascade,
    identity_type text not null check (identity_type in ('USER', 'CLIENT')),
    identity text not null,
    topic text not null,
    permit_action text not null check (permit_action in ('PUB', 'SUB', 'PUB_SUB')),
    effect text not null check (effect in ('ALLOW', 'DENY')),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    primary key (instance_id, identity_type, identity, topic)
);

create table custom_auth_connect_blacklist (
    instance_id text not null references instances (id) on delete cascade,
    client_id text not null,
    created_at timestamptz not null default now(),
    primary key (instance_id, client_id)
);
