//! Wake-ups for workers: a connection of its own LISTENs on `rhaiflow_queue`, which a
//! submission (and the reaper) NOTIFYs in its transaction, so an idle worker takes new work
//! within milliseconds instead of at its next look. Notifications only wake: a worker still
//! looks at its queues every `--poll-interval`, so one that is lost (the listener down while
//! it reconnects, a pooler in transaction mode that drops LISTEN: `--poll-only`) costs at most
//! that wait. A burst of notifications is one wake-up (the flag is set, not counted).

use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};
use tokio_postgres::{AsyncMessage, NoTls};

use super::connection::Pg;

/// The channel submissions notify.
pub const CHANNEL: &str = "rhaiflow_queue";

/// Set when there may be work; a worker waits on it between looks.
#[derive(Default)]
pub struct Wake {
    pending: Mutex<bool>,
    signal: Condvar,
}

impl Wake {
    pub fn notify(&self) {
        *self.pending.lock() = true;
        self.signal.notify_all();
    }

    /// Waits until notified or `timeout` passed; clears the flag.
    pub fn wait(&self, timeout: Duration) {
        let mut pending = self.pending.lock();
        if !*pending {
            self.signal.wait_for(&mut pending, timeout);
        }
        *pending = false;
    }
}

/// Keeps a listening connection open for as long as the store's runtime runs, reconnecting
/// when it is lost (and waking the worker then: what came meanwhile was not heard).
pub fn listen(pg: &Pg, wake: Arc<Wake>) {
    let mut config = pg.config();
    config.application_name("rhaiflow listener");
    pg.spawn(async move {
        loop {
            if let Ok((client, mut connection)) = config.connect(NoTls).await {
                let heard = wake.clone();
                let messages = tokio::spawn(async move {
                    while let Some(Ok(message)) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                        if let AsyncMessage::Notification(_) = message {
                            heard.notify();
                        }
                    }
                });
                if client.batch_execute(&format!("LISTEN {CHANNEL}")).await.is_ok() {
                    wake.notify();
                    let _ = messages.await;
                } else {
                    messages.abort();
                }
                drop(client);
            }
            wake.notify();
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
}
