-- which instances each configuration version changed: one row per (version, instance), written by the
-- same transaction that bumps config_version. instance_id '*' is a change to every instance (a token
-- signing key). no foreign key: a deleted instance keeps the record of its deletion. pruned by
-- housekeeping after 7 days.
create table config_changes (
    version bigint not null,
    instance_id text not null,
    changed_at timestamptz not null default now(),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    primary key (version, instance_id)
);
create index config_changes_changed on config_changes (changed_at);
