//! `rhaiflow serve`: the HTTP API on the execution store (`server`).

use std::net::SocketAddr;

use clap::Args;

use super::report;
use crate::store::StoreLocation;

#[derive(Args)]
pub struct ServeArgs {
    /// The address to listen on (a loopback one: other addresses need role tokens, not built
    /// yet); port 0 lets the system choose.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    listen: SocketAddr,
    /// The execution store: a folder, a .db file or a PostgreSQL URL (default: $RHAIFLOW_STORE,
    /// else ./.rhaiflow/).
    #[arg(long, value_name = "PATH")]
    store: Option<String>,
}

pub fn serve(args: ServeArgs) -> i32 {
    let served = StoreLocation::locate(args.store.as_deref()).and_then(|location| {
        crate::server::serve(args.listen, &location, |addr| say!("rhaiflow serves http://{addr} (store {location})"))
    });
    match served {
        Ok(()) => 0,
        Err(d) => {
            report(&d);
            2
        }
    }
}
