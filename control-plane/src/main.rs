//! `control-plane` binary: parses flags/env/config file, then serves the API or prints the OpenAPI
//! document.

use clap::Parser;
use control_plane::config::{Cli, Command};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Openapi => {
            println!("{}", control_plane::api::openapi().to_pretty_json()?);
            Ok(())
        }
        Command::Serve => {
            let config = cli.options.resolve()?;
            control_plane::telemetry::init_tracing(config.log_json);
            control_plane::server::run(config).await
        }
    }
}
