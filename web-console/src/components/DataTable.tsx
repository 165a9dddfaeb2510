// A list with a text filter and client-side paging; loading, error and empty states included.
import type { ComponentChildren } from 'preact';
import { useEffect, useMemo, useState } from 'preact/hooks';
import { Empty, ErrorBox, Loading } from './States';

export interface Column<T> {
  title: string;
  render: (row: T) => ComponentChildren;
  class?: string;
}

interface Props<T> {
  label: string;
  rows: T[] | undefined;
  loading?: boolean;
  error?: Error;
  onRetry?: () => void;
  columns: Column<T>[];
  rowKey: (row: T) => string;
  filterText: (row: T) => string;
  empty: ComponentChildren;
  pageSize?: number;
  toolbar?: ComponentChildren;
}

export function DataTable<T>({ label, rows, loading, error, onRetry, columns, rowKey, filterText, empty, pageSize = 10, toolbar }: Props<T>) {
  const [q, setQ] = useState('');
  const [page, setPage] = useState(0);
  const filtered = useMemo(() => {
    const needle = q.trim().toLowerCase();
    return (rows ?? []).filter((r) => !needle || filterText(r).toLowerCase().includes(needle));
  }, [rows, q]);
  const pages = Math.max(1, Math.ceil(filtered.length / pageSize));
  useEffect(() => setPage(0), [q]);
  const p = Math.min(page, pages - 1);
  const shown = filtered.slice(p * pageSize, (p + 1) * pageSize);
  const fid = `filter-${label.replace(/\W+/g, '-').toLowerCase()}`;

  return (
    <div class="table-wrap">
      <div class="toolbar">
        <div class="filter">
          <label for={fid} class="sr-only">
            Filter {label}
          </label>
          <input id={fid} type="search" placeholder={`Filter ${label}…`} value={q} onInput={(e) => setQ((e.target as HTMLInputElement).value)} />
        </div>
        {toolbar}
      </div>
      {error && !rows ? (
        <ErrorBox error={error} onRetry={onRetry} />
      ) : loading && !rows ? (
        <Loading />
      ) : !rows || rows.length === 0 ? (
        <Empty title={`No ${label} yet`}>{empty}</Empty>
      ) : filtered.length === 0 ? (
        <Empty title={`No ${label} match “${q}”`} />
      ) : (
        <>
          <table aria-label={label}>
            <thead>
              <tr>
                {columns.map((c) => (
                  <th class={c.class}>{c.title}</th>
                ))}
              </tr>
            </thead>
            <tbody>
              {shown.map((r) => (
                <tr key={rowKey(r)}>
                  {columns.map((c) => (
                    <td class={c.class} data-label={c.title}>
                      {c.render(r)}
                    </td>
                  ))}
                </tr>
              ))}
            </tbody>
          </table>
          <div class="pager">
            <span class="muted">
              {filtered.length} {filtered.length === 1 ? 'item' : 'items'}
              {filtered.length !== rows.length ? ` of ${rows.length}` : ''}
            </span>
            {pages > 1 ? (
              <span class="pager-buttons">
                <button type="button" class="btn small" disabled={p === 0} onClick={() => setPage(p - 1)} aria-label="Previous page">
                  ‹
                </button>
                <span>
                  {p + 1} / {pages}
                </span>
                <button type="button" class="btn small" disabled={p >= pages - 1} onClick={() => setPage(p + 1)} aria-label="Next page">
                  ›
                </button>
              </span>
            ) : null}
          </div>
        </>
      )}
    </div>
  );
}
