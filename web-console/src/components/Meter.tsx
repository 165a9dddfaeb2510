// How much of a limit is used: a thin bar, readable by assistive technology as a meter.
export function Meter({ label, used, limit }: { label: string; used: number; limit: number }) {
  return (
    <div class="meter" role="meter" aria-valuenow={used} aria-valuemax={limit} aria-label={`${label} used`}>
      <span style={{ width: `${Math.min(100, (used / Math.max(limit, 1)) * 100)}%` }} />
    </div>
  );
}
