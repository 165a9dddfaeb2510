-- broker nodes and what they report: per-node credentials, heartbeats, live client channels, client
-- event history (trace) and the broadcast command log brokers long-poll.

-- a node's secret is random (>= 128 bits), so its sha-256 is enough (no slow hash needed).
create table broker_nodes (
    id text primary key,
    secret_sha256 bytea not null,
    description text not null default '',
    -- the last heartbeat (all null until the node is first seen)
    boot_id text,
    software_version text,
    applied_version bigint,
    applied_hash text,
    last_error text,
    connections bigint,
    subscriptions bigint,
    messages_in_per_sec double precision,
    messages_out_per_sec double precision,
    started_at_ms bigint,
    last_heartbeat_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);

-- live connections as the brokers report them (connect adds, tcpclean removes). no foreign key to
-- instances: a broker may still report clients of an instance deleted a moment ago.
create table client_channels (
    node_id text not null references broker_nodes (id) on delete cascade,
    channel_id text not null,
    instance_id text not null,
    client_id text not null,
    client_ip text not null,
    connected_at timestamptz not null,
    subscriptions text[] not null default '{}',
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    primary key (node_id, channel_id)
);
create index client_channels_client on client_channels (instance_id, client_id);

-- connect / disconnect / tcpclean history for trace, pruned after 7 days.
create table client_events (
    id bigserial primary key,
    instance_id text not null,
    client_id text not null,
    node_id text not null,
    channel_id text not null,
    event_type text not null,
    client_ip text not null,
    time_ms bigint not null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create index client_events_client on client_events (instance_id, client_id, time_ms desc, id desc);
create index client_events_created on client_events (created_at);

-- broadcast commands (kick, send message); brokers poll by seq. pruned after 10 minutes.
create table broker_commands (
    seq bigserial primary key,
    command jsonb not null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create index broker_commands_created on broker_commands (created_at);
