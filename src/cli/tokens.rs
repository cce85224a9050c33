//! `rhaiflow tokens create --role viewer|operator|admin [--name TEXT] | list | revoke ID`: the
//! role tokens `rhaiflow serve` asks for once any exists (and without which it serves only a
//! loopback address). A token is printed once, when it is made; the store keeps its hash.

use clap::{Args, Subcommand};

use super::report_all;
use crate::diagnostic::{Code, Diagnostic};
use crate::store::{Role, StoreError, StoreLocation, TokenStore};

#[derive(Args)]
pub struct TokensArgs {
    #[command(subcommand)]
    command: TokensCommand,
    /// Execution store, which keeps the tokens: a folder, a .db file or a PostgreSQL URL
    /// (default: $RHAIFLOW_STORE, else ./.rhaiflow/).
    #[arg(long, value_name = "PATH", global = true)]
    store: Option<String>,
}

#[derive(Subcommand)]
enum TokensCommand {
    /// Make a token and print it (only now: the store keeps its hash).
    Create {
        /// viewer reads; operator also submits, cancels and resumes; admin also deletes
        /// executions and manages tokens.
        #[arg(long, value_enum)]
        role: Role,
        /// Who holds it or what it is for; events the holder causes name it.
        #[arg(long, default_value = "")]
        name: String,
    },
    /// The tokens: id, role, name, when made (never the tokens themselves).
    List,
    /// Forget a token: the servers refuse it from then on (within a second).
    Revoke { id: String },
}

pub fn tokens(args: TokensArgs) -> i32 {
    super::end_quietly_on_closed_pipe();
    let done = StoreLocation::locate(args.store.as_deref()).and_then(|location| {
        let tokens = TokenStore::open(&location).map_err(failed)?;
        match args.command {
            TokensCommand::Create { role, name } => create(&tokens, role, &name),
            TokensCommand::List => list(&tokens, &location),
            TokensCommand::Revoke { id } => revoke(&tokens, &id),
        }
    });
    match done {
        Ok(()) => 0,
        Err(d) => report_all(&[d]),
    }
}

fn failed(e: StoreError) -> Diagnostic {
    Diagnostic::plain(Code::Tokens, e.to_string())
}

fn create(tokens: &TokenStore, role: Role, name: &str) -> Result<(), Diagnostic> {
    let (record, text) = tokens.create(role, name).map_err(failed)?;
    // The token alone on stdout, for `TOKEN=$(rhaiflow tokens create ...)`.
    say_out!("{text}");
    say!("✔ token {} ({}) made: it is shown only now; keep it secret", record.id, role.as_str());
    Ok(())
}

fn list(tokens: &TokenStore, location: &StoreLocation) -> Result<(), Diagnostic> {
    let list = tokens.list().map_err(failed)?;
    if list.is_empty() {
        say!("no tokens in {location}: rhaiflow serve asks for none, and listens on loopback only");
        return Ok(());
    }
    say_out!("ID\tROLE\tCREATED\tNAME");
    for t in list {
        say_out!("{}\t{}\t{}\t{}", t.id, t.role.as_str(), t.created_at, t.name);
    }
    Ok(())
}

fn revoke(tokens: &TokenStore, id: &str) -> Result<(), Diagnostic> {
    if !tokens.revoke(id).map_err(failed)? {
        return Err(Diagnostic::plain(Code::Tokens, format!("no token has the id `{id}`"))
            .with_help("rhaiflow tokens list shows them"));
    }
    say!("✔ token {id} revoked");
    Ok(())
}
