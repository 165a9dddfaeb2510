-- control plane schema: instances and everything inside them, operators, access keys, tokens.
-- secrets are aes-256-gcm ciphertexts (nonce || ciphertext) under the master key, never plain text.

create table operators (
    username text primary key,
    password_hash text not null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);

-- one row: bumped in the same transaction as every mutation that changes the broker snapshot.
create table config_version (
    id boolean primary key default true check (id),
    version bigint not null default 1,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
insert into config_version (id) values (true);

-- ed25519 seeds that sign client tokens; the newest signs, all verify.
create table token_signing_keys (
    kid text primary key,
    seed_enc bytea not null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);

create table instances (
    id text primary key,
    name text not null,
    quotas jsonb not null,
    reject_duplicate_client_id boolean not null default false,
    description text not null default '',
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create unique index instances_name_ci on instances (lower(name));

create table parent_topics (
    instance_id text not null references instances (id) on delete cascade,
    name text not null,
    description text not null default '',
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    primary key (instance_id, name)
);

create table group_ids (
    instance_id text not null references instances (id) on delete cascade,
    group_id text not null,
    description text not null default '',
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    primary key (instance_id, group_id)
);

create table access_keys (
    id text primary key,
    secret_enc bytea not null,
    enabled boolean not null default true,
    description text not null default '',
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);

create table access_key_instances (
    access_key_id text not null references access_keys (id) on delete cascade,
    instance_id text not null references instances (id) on delete cascade,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    primary key (access_key_id, instance_id)
);
create index access_key_instances_instance on access_key_instances (instance_id);

-- acs3 request nonces, kept a little longer than the signature window so a replay is always caught.
create table request_nonces (
    access_key_id text not null,
    nonce text not null,
    expires_at timestamptz not null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    primary key (access_key_id, nonce)
);
create index request_nonces_expires on request_nonces (expires_at);

create table tokens (
    jti text primary key,
    instance_id text not null references instances (id) on delete cascade,
    access_key_id text not null,
    token_sha256 text not null unique,
    claims jsonb not null,
    expires_at_ms bigint not null,
    revoked_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create index tokens_revoked on tokens (instance_id, expires_at_ms) where revoked_at is not null;

create table device_credentials (
    instance_id text not null,
    client_id text not null,
    group_id text not null,
    device_id text not null,
    device_access_key_id text not null unique,
    secret_enc bytea not null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    primary key (instance_id, client_id),
    foreign key (instance_id, group_id) references group_ids (instance_id, group_id) on delete cascade
);
create index device_credentials_group on device_credentials (instance_id, group_id, client_id);
