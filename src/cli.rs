//! The command line (clap): `tabula [serve [--config PATH] [--data-dir DIR] [--port N]
//! [--host HOST]]`, `tabula export --table T …`, `tabula import --table T --input FILE …`,
//! `tabula admin create --email E --password P [--name N] [--config PATH] [--data-dir DIR]`.
//! Flags only carry values into [`LoadOptions`]; environment variables and precedence are the
//! config module's job, so every source of settings is resolved in one place.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::LoadOptions;

/// Tabula: a declared schema of tables served as a complete REST backend.
#[derive(Debug, Parser)]
#[command(name = "tabula", version, about, long_about = None)]
pub struct Cli {
    /// What to do; no subcommand means `serve` with no overrides.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the API (the default). Flags override the TABULA_* environment, which overrides
    /// the config file.
    Serve(ServeArgs),
    /// Export a table's records as CSV or JSON, straight from the data directory (the server
    /// must not be running on it).
    Export(ExportArgs),
    /// Import records from a CSV or JSON file, straight into the data directory (the server
    /// must not be running on it).
    Import(ImportArgs),
    /// Administer the data directory offline (the server must not be running on it).
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Measure how much this machine (or a running Tabula at --url) can take: built-in and
    /// scripted scenarios, closed or open loop, and `bench capacity` for the highest rate that
    /// holds an SLO (docs/capacity.md).
    Bench(Box<crate::bench::BenchArgs>),
}

/// The flags of `tabula export`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Args)]
pub struct ExportArgs {
    /// The table (name or id).
    #[arg(long)]
    pub table: String,
    /// `csv` or `json` [default: from the output's extension, else json].
    #[arg(long)]
    pub format: Option<String>,
    /// The file to write [default: stdout].
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// A filter in any spelling of the list endpoint (`status='done'`).
    #[arg(long)]
    pub filter: Option<String>,
    /// A sort (`-priority,title`).
    #[arg(long)]
    pub sort: Option<String>,
    /// The fields to export (`title,status`); `id` always is.
    #[arg(long)]
    pub fields: Option<String>,
    /// CSV: `escape` writes a text cell that a spreadsheet would run as a formula (`=`, `+`,
    /// `-`, `@`, tab, CR) or that starts with `'` with a `'` in front; `raw` writes every cell as
    /// stored [default: escape].
    #[arg(long, value_name = "escape|raw")]
    pub csv_formulas: Option<String>,
    /// The config file [default: ./config.toml if present, else the built-in demo app].
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// The data directory [config: server.data_dir; env TABULA_DATA_DIR].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

/// The flags of `tabula import`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Args)]
pub struct ImportArgs {
    /// The table (name or id).
    #[arg(long)]
    pub table: String,
    /// The CSV or JSON file to read.
    #[arg(long, short, value_name = "FILE")]
    pub input: PathBuf,
    /// `csv` or `json` [default: from the file's extension, else guessed from its content].
    #[arg(long)]
    pub format: Option<String>,
    /// CSV: `escape` removes one leading `'` from a cell when `=`, `+`, `-`, `@`, tab, CR or `'`
    /// follows it (undoing an escaping export); `raw` reads every cell as it is
    /// [default: escape].
    #[arg(long, value_name = "escape|raw")]
    pub csv_formulas: Option<String>,
    /// The config file [default: ./config.toml if present, else the built-in demo app].
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// The data directory [config: server.data_dir; env TABULA_DATA_DIR].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

/// The subcommands of `tabula admin`.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create an admin account in the data directory, with no server running.
    Create(AdminCreateArgs),
}

/// The flags of `tabula admin create`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Args)]
pub struct AdminCreateArgs {
    /// The new admin's email (its sign-in name).
    #[arg(long, value_name = "EMAIL")]
    pub email: String,
    /// The new admin's password (at least 8 characters).
    #[arg(long, value_name = "PASSWORD")]
    pub password: String,
    /// The new admin's display name.
    #[arg(long, value_name = "NAME", default_value = "Admin")]
    pub name: String,
    /// The config file that names the data directory, as for `serve`.
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// The data directory, as for `serve` [config: server.data_dir; env TABULA_DATA_DIR].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

impl AdminCreateArgs {
    /// The flags as the config loader takes them (only the file and the data directory).
    pub fn load_options(&self) -> LoadOptions {
        LoadOptions {
            config_path: self.config.clone(),
            data_dir: self.data_dir.clone(),
            ..LoadOptions::default()
        }
    }
}

/// The flags of `tabula serve`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Args)]
pub struct ServeArgs {
    /// The config file to read; it must exist [default: ./config.toml if present, else the
    /// built-in demo app; env TABULA_CONFIG].
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// The data directory [config: server.data_dir; env TABULA_DATA_DIR].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// The port to listen on; 0 picks a free one [config: server.port; env TABULA_PORT].
    #[arg(long, value_name = "N")]
    pub port: Option<u16>,
    /// The address to listen on [config: server.host; env TABULA_HOST].
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
}

impl ServeArgs {
    /// The flags as the config loader takes them.
    pub fn load_options(&self) -> LoadOptions {
        LoadOptions {
            config_path: self.config.clone(),
            data_dir: self.data_dir.clone(),
            port: self.port,
            host: self.host.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    fn parse(arguments: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("tabula").chain(arguments.iter().copied()))
    }

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn no_subcommand_means_serve_without_overrides() {
        let cli = parse(&[]).expect("parses");
        assert!(cli.command.is_none());
        assert_eq!(ServeArgs::default().load_options(), LoadOptions::default());
    }

    #[test]
    fn serve_flags_become_load_options() {
        let cli = parse(&[
            "serve",
            "--config",
            "app.toml",
            "--data-dir",
            "/srv/data",
            "--port",
            "8080",
            "--host",
            "0.0.0.0",
        ])
        .expect("parses");
        let Some(Command::Serve(args)) = cli.command else {
            panic!("expected serve");
        };
        assert_eq!(
            args.load_options(),
            LoadOptions {
                config_path: Some(PathBuf::from("app.toml")),
                data_dir: Some(PathBuf::from("/srv/data")),
                port: Some(8080),
                host: Some("0.0.0.0".to_owned()),
            }
        );
    }

    #[test]
    fn a_bad_port_or_an_unknown_flag_is_refused() {
        assert!(parse(&["serve", "--port", "99999"]).is_err());
        assert!(parse(&["serve", "--prot", "80"]).is_err());
    }

    #[test]
    fn admin_create_takes_an_account_and_the_data_directory() {
        let cli = parse(&[
            "admin",
            "create",
            "--email",
            "boss@example.com",
            "--password",
            "long enough",
            "--data-dir",
            "/srv/data",
        ])
        .expect("parses");
        let Some(Command::Admin(AdminCommand::Create(args))) = cli.command else {
            panic!("expected admin create");
        };
        assert_eq!(args.email, "boss@example.com");
        assert_eq!(args.name, "Admin", "the default name");
        assert_eq!(
            args.load_options(),
            LoadOptions {
                data_dir: Some(PathBuf::from("/srv/data")),
                ..LoadOptions::default()
            }
        );
        assert!(
            parse(&["admin", "create", "--email", "a@b.c"]).is_err(),
            "a password is required"
        );
    }
}
