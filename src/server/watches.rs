//! One look at the store per followed execution, however many streams follow it: the first
//! stream of an execution starts a poller that reads its new events every `LOOK_EVERY` and
//! broadcasts them; every stream subscribes, reads what came before from the store itself, and
//! takes the rest from the broadcast (an event's seq says which it already has). A poller
//! per stream made a thousand streams a thousand looks every 50 ms on one store connection.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc};

use super::events::Watched;
use super::{blocking, Shared};
use crate::store::ShownStatus;

/// How often an execution's poller looks for new events.
const LOOK_EVERY: Duration = Duration::from_millis(50);

/// The events a poller broadcasts at once before a slow stream misses some (it then reads
/// them from the store).
const BACKLOG: usize = 1024;

/// The pollers running, by execution id.
#[derive(Default)]
pub struct Watches(parking_lot::Mutex<HashMap<String, broadcast::Sender<Arc<Watched>>>>);

/// A receiver of `id`'s broadcast, its poller started if none runs.
fn subscribe(shared: &Arc<Shared>, id: &str) -> broadcast::Receiver<Arc<Watched>> {
    let mut pollers = shared.watches.0.lock();
    if let Some(feed) = pollers.get(id) {
        return feed.subscribe();
    }
    let (feed, receiver) = broadcast::channel(BACKLOG);
    pollers.insert(id.to_string(), feed.clone());
    tokio::spawn(poll(shared.clone(), id.to_string(), feed));
    receiver
}

/// The state of `id` and its events after `after`, as the store has them now.
async fn read(shared: &Arc<Shared>, id: &str, after: u64) -> Option<(Option<&'static str>, Vec<(u64, String)>)> {
    let (store, id) = (shared.clone(), id.to_string());
    // Its status before its events: events committed with the final status are read.
    let (record, lines) = blocking(move || {
        let record = store.store.execution(&id)?;
        let lines = store.store.events_after(&id, after)?;
        Ok((record, lines))
    })
    .await
    .ok()?;
    let ended = !matches!(record.shown(), ShownStatus::Queued | ShownStatus::Running);
    Some((ended.then(|| record.shown_status()), lines))
}

/// Reads `id`'s new events every `LOOK_EVERY` and broadcasts them, then its end; stops then,
/// when nobody listens, or when the store cannot be read (its streams then read it themselves).
async fn poll(shared: Arc<Shared>, id: String, feed: broadcast::Sender<Arc<Watched>>) {
    // From its last committed event on: each stream reads what came before by itself.
    let (store, known) = (shared.clone(), id.clone());
    let mut after = blocking(move || store.store.execution(&known)).await.map(|r| r.last_seq).ok();
    while let Some(from) = after {
        let Some((ended, lines)) = read(&shared, &id, from).await else { break };
        for (seq, line) in lines {
            after = Some(seq);
            let _ = feed.send(Arc::new(Watched::Event(seq, line)));
        }
        if let Some(status) = ended {
            let _ = feed.send(Arc::new(Watched::End { status, last_seq: after.unwrap_or(from) }));
            break;
        }
        {
            // Under the lock that `subscribe` takes: nobody joins between the count and the removal.
            let mut pollers = shared.watches.0.lock();
            if feed.receiver_count() == 0 {
                pollers.remove(&id);
                return;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(LOOK_EVERY) => {}
            _ = super::until_closing(shared.closing.clone()) => break,
        }
    }
    shared.watches.0.lock().remove(&id);
}

/// Watches `id` from after `after`: its events as they are committed, then its end; stops when
/// the receiver is dropped (the client left) or the server stops. Neither a gap nor a duplicate: what the store had
/// when this subscribed is read from it, the rest comes from the broadcast, seq by seq (a seq
/// skipped there, or a broadcast missed, is read from the store again).
pub(super) fn watch(shared: Arc<Shared>, id: String, after: u64) -> mpsc::Receiver<Watched> {
    let (send, receive) = mpsc::channel::<Watched>(256);
    tokio::spawn(async move {
        let mut after = after;
        let mut feed = subscribe(&shared, &id);
        // From the store: what came before (and again after missing some of the broadcast).
        'read: loop {
            let Some((ended, lines)) = read(&shared, &id, after).await else { return };
            for (seq, line) in lines {
                after = seq;
                if send.send(Watched::Event(seq, line)).await.is_err() {
                    return;
                }
            }
            if let Some(status) = ended {
                let _ = send.send(Watched::End { status, last_seq: after }).await;
                return;
            }
            loop {
                let received = tokio::select! {
                    received = feed.recv() => received,
                    // The server stops: the stream ends (its client reconnects elsewhere).
                    _ = super::until_closing(shared.closing.clone()) => return,
                };
                let watched = match received {
                    Ok(watched) => watched,
                    Err(broadcast::error::RecvError::Lagged(_)) => continue 'read,
                    // Its poller stopped (the store could not be read): start another.
                    Err(broadcast::error::RecvError::Closed) => {
                        feed = subscribe(&shared, &id);
                        continue 'read;
                    }
                };
                match &*watched {
                    Watched::Event(seq, _) if *seq <= after => {}
                    // Seqs follow each other: one skipped was committed between this stream's
                    // read and its poller's first look (which starts at the last seq then). The
                    // store has it.
                    Watched::Event(seq, _) if *seq > after + 1 => continue 'read,
                    Watched::Event(seq, line) => {
                        after = *seq;
                        if send.send(Watched::Event(*seq, line.clone())).await.is_err() {
                            return;
                        }
                    }
                    // Caught up: the end as the poller saw it. Read again, a thousand streams
                    // read the store at once, each behind the others on its one connection
                    // (the watcher of `/events` too), when their execution ends.
                    Watched::End { status, last_seq } if *last_seq == after => {
                        let _ = send.send(Watched::End { status, last_seq: after }).await;
                        return;
                    }
                    Watched::End { .. } => continue 'read,
                }
            }
        }
    });
    receive
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::{RunOptions, StoreChoice};
    use crate::store::{DeploymentStore, StoreLocation};

    /// A `Shared` on a fresh store, and a run recording `watched` there (five tasks of 0.1 s),
    /// once the store has it.
    async fn running(dir: &tempfile::TempDir) -> (Arc<Shared>, std::thread::JoinHandle<crate::runner::RunReport>) {
        let location = StoreLocation::Sqlite(dir.path().join("s.db"));
        let script = dir.path().join("w.rhai");
        std::fs::write(&script, r#"let g = graph_mode(); let s = g.sequence(); for i in 0..5 { s.add(task(`t${i}`, || sleep(0.1))); } g.execute();"#).unwrap();
        let mut options = RunOptions::new(&script);
        options.store = StoreChoice::At(location.clone());
        options.execution_id = Some("watched".into());
        let run = std::thread::spawn(move || crate::runner::run(&options, Vec::new()));
        let location_for_tokens = location.clone();
        // Never told to close: the server of these tests does not stop.
        let (never, closing) = tokio::sync::watch::channel(false);
        std::mem::forget(never);
        let shared = Arc::new(Shared {
            store: crate::store::open(&location).unwrap(),
            deployments: DeploymentStore::open(&location).unwrap(),
            location,
            allow_scripts: false,
            changes: broadcast::channel(4).0,
            idempotent: Default::default(),
            tokens: super::super::auth::Tokens::new(
                crate::store::TokenStore::open(&location_for_tokens).unwrap(),
                false,
            )
            .unwrap(),
            closing,
            watches: Default::default(),
        });
        while shared.store.execution("watched").is_err() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        (shared, run)
    }

    /// What a stream gets: each event's seq, and the end as its last seq + 1000.
    async fn seqs(mut stream: mpsc::Receiver<Watched>) -> Vec<u64> {
        let mut seqs = Vec::new();
        while let Some(watched) = stream.recv().await {
            match watched {
                Watched::Event(seq, _) => seqs.push(seq),
                Watched::End { last_seq, .. } => seqs.push(last_seq + 1000),
            }
        }
        seqs
    }

    fn every_event_once_then_the_end(seqs: &[u64]) {
        let last = seqs.last().unwrap() - 1000;
        let expected: Vec<u64> = (1..=last).chain([last + 1000]).collect();
        assert_eq!(seqs, expected);
    }

    // Every stream of an execution polled the store on its own (1,000 streams: 20,000 reads a
    // second on one connection); two streams now share one poller, and both get every event
    // once, then the end.
    #[test]
    fn the_streams_of_an_execution_share_one_poller() {
        let dir = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let (seen, pollers, run) = runtime.block_on(async {
            let (shared, run) = running(&dir).await;
            let streams = [watch(shared.clone(), "watched".into(), 0), watch(shared.clone(), "watched".into(), 0)];
            tokio::time::sleep(Duration::from_millis(100)).await;
            // One poller, which both streams listen to.
            let pollers = shared.watches.0.lock().values().map(|feed| feed.receiver_count()).collect::<Vec<_>>();
            let [first, second] = streams;
            (vec![seqs(first).await, seqs(second).await], pollers, run)
        });
        run.join().unwrap();
        assert_eq!(pollers, [2]);
        every_event_once_then_the_end(&seen[0]);
        assert_eq!(seen[0], seen[1]);
    }

    // A poller's first look starts at the last seq then: an event committed between a stream's
    // read of the store and that look never came through the broadcast, and the stream went on
    // from the next one, without it. A seq skipped in the broadcast is read from the store now.
    #[test]
    fn a_seq_the_broadcast_skips_is_read_from_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let (seen, run) = runtime.block_on(async {
            let (shared, run) = running(&dir).await;
            // The stream's poller is this feed: it broadcasts a seq far ahead, then stops.
            let (feed, _) = broadcast::channel(16);
            shared.watches.0.lock().insert("watched".into(), feed.clone());
            let stream = watch(shared.clone(), "watched".into(), 0);
            tokio::time::sleep(Duration::from_millis(200)).await;
            assert!(feed.send(Arc::new(Watched::Event(999, "{}".into()))).is_ok());
            shared.watches.0.lock().remove("watched");
            drop(feed);
            (seqs(stream).await, run)
        });
        run.join().unwrap();
        every_event_once_then_the_end(&seen);
    }
}
