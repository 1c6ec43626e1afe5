//! The `tabula` command: parses flags and hands over to the library.

use std::process::ExitCode;

use clap::Parser;
use tabula::cli::{Cli, Command, ServeArgs};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Some(Command::Serve(args)) => tabula::serve(&args),
        Some(Command::Export(args)) => tabula::offline::export(&args),
        Some(Command::Import(args)) => tabula::offline::import(&args),
        None => tabula::serve(&ServeArgs::default()),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("tabula: {message}");
            ExitCode::FAILURE
        }
    }
}
