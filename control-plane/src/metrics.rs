//! Every metric the control plane records, named once: scrape configs and dashboards depend on these
//! names, label keys and fixed label values.

use std::time::Duration;

/// Counter of answered requests, by method, route and status.
pub const HTTP_REQUESTS_TOTAL: &str = "cp_http_requests_total";
/// Histogram of request latency in seconds, with the same labels.
pub const HTTP_REQUEST_DURATION_SECONDS: &str = "cp_http_request_duration_seconds";
/// The route label of requests no route matched (their paths would make the label unbounded).
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// Records one answered request.
pub fn http_request(method: String, route: String, status: u16, elapsed: Duration) {
    let labels = [("method", method), ("route", route), ("status", status.to_string())];
    ::metrics::counter!(HTTP_REQUESTS_TOTAL, &labels).increment(1);
    ::metrics::histogram!(HTTP_REQUEST_DURATION_SECONDS, &labels).record(elapsed.as_secs_f64());
}

/// Counter of connections refused because `http_max_connections` were open.
pub const HTTP_CONNECTIONS_REFUSED_TOTAL: &str = "cp_http_connections_refused_total";
/// Counter of connections closed by a timeout, by `reason`: `header_timeout` or `idle`.
pub const HTTP_CONNECTIONS_TIMED_OUT_TOTAL: &str = "cp_http_connections_timed_out_total";
/// Counter of login attempts refused before the password was checked, by `reason`: `address`,
/// `username` (rate limits) or `busy` (too many hashes at once).
pub const LOGIN_REFUSED_TOTAL: &str = "cp_login_refused_total";

pub fn http_connection_refused() {
    ::metrics::counter!(HTTP_CONNECTIONS_REFUSED_TOTAL).increment(1);
}

pub fn http_connection_timed_out(reason: &'static str) {
    ::metrics::counter!(HTTP_CONNECTIONS_TIMED_OUT_TOTAL, "reason" => reason).increment(1);
}

pub fn login_refused(reason: &'static str) {
    ::metrics::counter!(LOGIN_REFUSED_TOTAL, "reason" => reason).increment(1);
}

/// Counter of TestRule outcomes, by `outcome`: `delivered`, `failed`, `timeout` or `no_broker`.
pub const RULE_TESTS_TOTAL: &str = "cp_rule_tests_total";
/// Counter of broker reports about rules the control plane did not keep, by `kind`: `dead_letter`
/// (its rule no longer exists) or `test_result` (no such test asked of that node, or answered already).
pub const RULE_REPORTS_IGNORED_TOTAL: &str = "cp_rule_reports_ignored_total";

pub fn rule_test(outcome: &'static str) {
    ::metrics::counter!(RULE_TESTS_TOTAL, "outcome" => outcome).increment(1);
}

pub fn rule_reports_ignored(kind: &'static str, n: u64) {
    ::metrics::counter!(RULE_REPORTS_IGNORED_TOTAL, "kind" => kind).increment(n);
}

/// Counter of message-trace queries some live broker did not answer in time.
pub const TRACE_QUERIES_INCOMPLETE_TOTAL: &str = "cp_trace_queries_incomplete_total";

pub fn trace_query_incomplete() {
    ::metrics::counter!(TRACE_QUERIES_INCOMPLETE_TOTAL).increment(1);
}

/// Counter of configuration documents sent to brokers, by `kind`: `snapshot` or `delta`; and of
/// their bytes. Bytes per delta follow the size of a change, bytes per snapshot the whole configuration.
pub const CONFIG_SENT_TOTAL: &str = "cp_config_sent_total";
pub const CONFIG_SENT_BYTES_TOTAL: &str = "cp_config_sent_bytes_total";

pub fn config_sent(kind: &'static str, bytes: usize) {
    ::metrics::counter!(CONFIG_SENT_TOTAL, "kind" => kind).increment(1);
    ::metrics::counter!(CONFIG_SENT_BYTES_TOTAL, "kind" => kind).increment(bytes as u64);
}

/// Counter of heartbeats whose configuration digest differed from the control plane's at the same
/// version (the broker then gets the full snapshot).
pub const CONFIG_DIGEST_MISMATCHES_TOTAL: &str = "cp_config_digest_mismatches_total";

pub fn config_digest_mismatch() {
    ::metrics::counter!(CONFIG_DIGEST_MISMATCHES_TOTAL).increment(1);
}
