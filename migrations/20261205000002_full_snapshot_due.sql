-- set when a broker's configuration digest differs from the control plane's at the same version:
-- its next snapshot poll gets the full snapshot, not a delta (docs/sync-protocol.md).
alter table broker_nodes add column full_snapshot_due boolean not null default false;
