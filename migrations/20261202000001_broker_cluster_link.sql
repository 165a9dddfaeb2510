-- a clustered broker's link to nats as its last heartbeat reported it: true up, false down, null for a
-- broker that runs alone (or has not reported yet).
alter table broker_nodes add column cluster_link boolean;
