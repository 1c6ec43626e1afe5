//! `tabula admin …`: administration of a data directory with no server running. Today one
//! command, `tabula admin create`, which writes an admin account straight into the store (SPEC
//! §1, the third way to get a first admin besides the bootstrap token and `TABULA_ADMIN_*`).

use tabula_actors::accounts::{create_admin_offline, describe, NewAccount};
use tabula_storage::Store;

use crate::cli::AdminCreateArgs;
use crate::config;

/// `tabula admin create`: loads the configuration as `serve` would (file < env < flags) to find
/// the data directory, opens the store (which fails while a server holds it), creates the admin
/// and flushes. Returns the line to print.
pub fn create_admin(args: &AdminCreateArgs) -> Result<String, String> {
    let loaded = config::load(&args.load_options()).map_err(|error| error.to_string())?;
    let data_dir = loaded.config.server.data_dir;
    let store = Store::open(&data_dir).map_err(|error| {
        format!(
            "cannot open the data directory {} (is a server running on it?): {error}",
            data_dir.display()
        )
    })?;
    let account = NewAccount {
        email: args.email.clone(),
        password: args.password.clone(),
        name: args.name.clone(),
        role: None,
    };
    let outcome = create_admin_offline(&store, account);
    let closed = store.close();
    let user = outcome.map_err(|error| format!("cannot create the admin: {}", describe(&error)))?;
    closed.map_err(|error| format!("cannot flush the data directory: {error}"))?;
    Ok(format!(
        "admin account created: {} (id {}) in {}",
        user.email,
        user.id,
        data_dir.display()
    ))
}
