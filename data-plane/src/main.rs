//! The `broker` binary: parses configuration, sets up logging, and runs the MQTT broker.

use clap::Parser;
use data_plane::{config, server};
use tracing_subscriber::EnvFilter;

/// mimalloc instead of glibc's malloc: a routed message is allocated on the publisher's worker and
/// freed on the subscriber's, and glibc then takes the other arena's lock (measured: a quarter of
/// the CPU went to futex waits under QoS 0 load; QoS 0 and fan-out throughput rose 15-25 %).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// No transparent huge pages for this process. mimalloc asks the kernel for them on its arenas, and
/// a broker's heap is many small per-connection blocks spread over those arenas: each first touch
/// then zeroes 2 MiB, and half-used huge pages stay resident. Measured (BENCHMARKS.md, "Transparent
/// huge pages"): about a fifth of the broker's CPU per connect went to zeroing huge pages, and
/// without them p2p costs less CPU per message and an idle connection less memory. Per process
/// (`prctl`), so the host's setting stays as the operator chose it; it also covers hosts where THP
/// is "always" rather than "madvise". The kernel checks it at each page fault, so memory mapped
/// before this call (argument parsing, logging set-up) is covered too.
fn disable_transparent_huge_pages() {
    // SAFETY: PR_SET_THP_DISABLE takes integer arguments only and touches no memory of ours.
    if unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) } != 0 {
        // Old kernels (before 3.15) lack it; the broker then runs as before, only heavier.
        let error = std::io::Error::last_os_error();
        tracing::warn!(%error, "could not turn transparent huge pages off");
    }
}

fn main() -> std::process::ExitCode {
    let args = config::Args::parse();
    // The store engine is chatty at info; its warnings still show.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info"))
        .add_directive("fjall=warn".parse().expect("static directive"))
        .add_directive("lsm_tree=warn".parse().expect("static directive"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    if args.log_json {
        tracing_subscriber::fmt().json().with_env_filter(filter).init();
    } else {
        tracing_subscriber::fmt().with_ansi(ansi).with_env_filter(filter).init();
    }
    disable_transparent_huge_pages();
    let cfg = match config::Config::load(&args) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "invalid configuration");
            return std::process::ExitCode::from(2);
        }
    };
    match server::run(cfg) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "broker failed");
            std::process::ExitCode::FAILURE
        }
    }
}
