-- Message-trace queries (docs/trace.md): one row per broker asked; its answer (common::sync::TraceAnswer)
-- once it came. Brokers keep the records; the control plane only merges their answers. Housekeeping
-- removes old rows.
create table trace_queries (
    request_id text not null,
    node_id text not null,
    answer jsonb,
    created_at timestamptz not null default now(),
    primary key (request_id, node_id)
);
create index trace_queries_created on trace_queries (created_at);
