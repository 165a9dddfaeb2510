//! `control-plane` binary: parses flags/env/config file, then serves the API or prints the OpenAPI
//! document.

use std::process::ExitCode;

use clap::Parser;
use control_plane::config::{Cli, Command};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Openapi => control_plane::api::openapi()
            .to_pretty_json()
            .map(|json| println!("{json}"))
            .map_err(Into::into),
        Command::Serve => serve(cli.options).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One readable line, whatever RUST_BACKTRACE says.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(options: control_plane::config::CliOptions) -> anyhow::Result<()> {
    let config = options.resolve()?;
    control_plane::telemetry::init_tracing(config.log_json);
    control_plane::server::run(config).await
}
