-- per-instance figures from the brokers' heartbeats: the latest report of each broker for each instance
-- (replaced by every heartbeat of that broker; only brokers heard from within broker_silent_secs count),
-- and one point per instance and minute over the last 24 hours, pruned by housekeeping.

create table broker_instance_usage (
    node_id text not null references broker_nodes (id) on delete cascade,
    instance_id text not null,
    connections bigint not null,
    subscriptions bigint not null,
    messages_in_per_sec double precision not null,
    messages_out_per_sec double precision not null,
    offline_messages bigint not null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    primary key (node_id, instance_id)
);
create index broker_instance_usage_instance on broker_instance_usage (instance_id);

-- the instance's totals across the brokers (offline messages: the largest report), the highest seen in
-- the minute. no foreign key: a deleted instance's history goes with housekeeping.
create table instance_usage_history (
    instance_id text not null,
    minute timestamptz not null,
    connections bigint not null,
    subscriptions bigint not null,
    messages_in_per_sec double precision not null,
    messages_out_per_sec double precision not null,
    offline_messages bigint not null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    primary key (instance_id, minute)
);
create index instance_usage_history_minute on instance_usage_history (minute);
