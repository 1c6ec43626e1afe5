//! The `tabula` command: parses flags and hands over to the library.

use std::process::ExitCode;

use clap::Parser;
use tabula::cli::{AdminCommand, Cli, Command, ServeArgs};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Some(Command::Serve(args)) => tabula::serve(&args),
        Some(Command::Export(args)) => tabula::offline::export(&args),
        Some(Command::Import(args)) => tabula::offline::import(&args),
        Some(Command::Admin(AdminCommand::Create(args))) => {
            tabula::offline_admin::create_admin(&args).map(|done| println!("{done}"))
        }
        Some(Command::Bench(args)) => tabula::bench::run(&args),
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
