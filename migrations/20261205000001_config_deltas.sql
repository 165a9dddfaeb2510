-- configuration deltas (docs/sync-protocol.md "Deltas"). config_changes rows now mean "the instance's
-- settings changed" (devices_included: it is new, send its device credentials too); device credentials
-- are recorded one by one in config_device_changes, so a change to one of a million does not resend
-- the others. config_history.floor: the newest version whose records housekeeping has pruned; a broker
-- at an older version needs the full snapshot. Records written before this migration did not list
-- devices, so the floor starts at the current version.
alter table config_changes add column devices_included boolean not null default false;

create table config_device_changes (
    version bigint not null,
    instance_id text not null,
    client_id text not null,
    changed_at timestamptz not null default now(),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    primary key (version, instance_id, client_id)
);
create index config_device_changes_changed on config_device_changes (changed_at);

create table config_history (
    id boolean primary key default true check (id),
    floor bigint not null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
insert into config_history (floor) select version from config_version;
