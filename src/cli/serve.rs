//! `rhaiflow serve`: the HTTP API on the execution store (`server`).

use std::net::SocketAddr;

use clap::Args;

use super::report;
use crate::server::ServeOptions;
use crate::store::StoreLocation;

#[derive(Args)]
pub struct ServeArgs {
    /// The address to listen on; port 0 lets the system choose. Any but a loopback one needs
    /// role tokens in the store (`rhaiflow tokens create`).
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    listen: SocketAddr,
    /// The execution store: a folder, a .db file or a PostgreSQL URL (default: $RHAIFLOW_STORE,
    /// else ./.rhaiflow/).
    #[arg(long, value_name = "PATH")]
    store: Option<String>,
    /// Let clients submit scripts' text (`{"script": ...}`), not only installed bundles'
    /// workflows: it is code that runs with this server's rights.
    #[arg(long)]
    allow_scripts: bool,
}

pub fn serve(args: ServeArgs) -> i32 {
    let served = StoreLocation::locate(args.store.as_deref()).and_then(|location| {
        let shown = location.to_string();
        let options = ServeOptions { listen: args.listen, location, allow_scripts: args.allow_scripts };
        crate::server::serve(options, |addr| say!("rhaiflow serves http://{addr} (store {shown})"))
    });
    match served {
        Ok(()) => 0,
        Err(d) => {
            report(&d);
            2
        }
    }
}
