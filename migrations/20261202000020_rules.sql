-- rules of an instance (docs/rules.md): source and target as the snapshot carries them
-- (common::rules::RuleSource / RuleTarget) but with every secret removed; the secrets (webhook signing
-- secret, NATS password, token and credentials) are one AES-256-GCM ciphertext under the master key,
-- bound to the rule id.
create table rules (
    instance_id text not null references instances (id) on delete cascade,
    id text primary key,
    name text not null,
    enabled boolean not null default true,
    kind text not null,
    source jsonb not null,
    target jsonb, -- none for inflow rules (their target is the instance)
    outbox jsonb not null,
    secrets_enc bytea,
    -- which secrets are set (their API field paths, e.g. target.secret), for hasSecret in answers
    secret_fields text[] not null default '{}',
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create index rules_instance on rules (instance_id, created_at);

-- each broker's latest figures per rule (replaced by every heartbeat of that broker; counters since
-- the broker started), summed over the brokers by GetRule / ListRules.
create table broker_rule_stats (
    node_id text not null references broker_nodes (id) on delete cascade,
    rule_id text not null references rules (id) on delete cascade,
    matched bigint not null,
    delivered bigint not null,
    failed bigint not null,
    dropped bigint not null,
    dead_lettered bigint not null,
    queued bigint not null,
    queued_bytes bigint not null,
    overflowing boolean not null,
    last_error text,
    last_error_at_ms bigint,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    primary key (node_id, rule_id)
);
create index broker_rule_stats_rule on broker_rule_stats (rule_id);

-- deliveries a target refused for good, as brokers report them; the latest 100 per rule are kept.
create table rule_dead_letters (
    seq bigserial primary key,
    rule_id text not null references rules (id) on delete cascade,
    node_id text not null,
    at_ms bigint not null,
    status integer,
    error text not null,
    topic text,
    client_id text,
    msg_id text,
    body_head text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create index rule_dead_letters_rule on rule_dead_letters (rule_id, seq);

-- TestRule requests: the broker asked and, once it answered (POST command-results), its result.
-- pruned by housekeeping after 10 minutes.
create table rule_tests (
    request_id text primary key,
    rule_id text not null references rules (id) on delete cascade,
    node_id text not null,
    result jsonb,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create index rule_tests_created on rule_tests (created_at);
