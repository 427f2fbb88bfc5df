//! `GET /api/ws[?after=ID]`: the hub. Every item created, by any process
//! on the store, is pushed to every open socket as a text message, the
//! item's JSON (as `GET /api/items/{id}` returns it).
//!
//! With `?after=ID` the session first replays, in id order, every item
//! above ID, then goes live: a client that reconnects with the last id it
//! saw misses nothing and sees nothing twice, however many restarts it
//! goes through. Both come from the same question to the feed ("what is
//! above the last id sent?", [`Feed::after`](crate::long_lived::feed::Feed::after)),
//! so there is no seam between the replay and the live part.
//!
//! The hub only talks: what the client sends is read (for the pings and
//! the closing handshake) and dropped.

use std::pin::pin;
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};

use super::Socket;
use super::session::{self, Watch};
use crate::app::App;
use crate::long_lived::sockets::Ending;
use crate::server::when_woken::{Gate, WhenWoken};
use crate::service::request_token;

/// The hub's read buffer (see [`config`]).
const HUB_READ_BUFFER: usize = 4 * 1024;

/// What a hub client may send: only control frames and small messages,
/// which are dropped anyway.
pub fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        // tungstenite's default read buffer is 128 KiB, taken at the
        // handshake and zero-filled again at every read, however small
        // the frame. A hub client sends pings and a Close: 4 KiB holds
        // those, and a larger frame grows the buffer for itself. Measured
        // with 1,000 open hub sockets, each pinged once: 141 KB of the
        // server's memory per socket with the default, 10–12 KB with this;
        // and the zero-filling was the largest single cost (14 % of the
        // CPU) of an instance taking over 5,000 reconnects in the storm
        // bench.
        .read_buffer_size(HUB_READ_BUFFER)
        .max_message_size(Some(64 * 1024))
        .max_frame_size(Some(64 * 1024))
}

/// Items sent per turn of the loop: between two turns the session looks
/// at the shutdown and the peer again.
const BATCH: usize = 64;

/// One hub session, from the item after `after` on.
pub async fn run(app: Arc<App>, mut socket: Socket, mut after: u64) -> Ending {
    let mut watch = Watch::new(&app);
    // The forced close: one wait for the session's life (`session::Aborted`).
    let mut aborted = pin!(app.shutdown.streams_aborted());
    // The drain, at this session's own instant in the spread window, or
    // the session's age.
    // Polled only when it wakes the session, like the socket below.
    let mut closing = pin!(WhenWoken::new(session::told_to_go(&app)));
    // The socket is read only when it has woken the session: the feed
    // wakes it at every item, the client almost never, and each read
    // attempt costs tungstenite a zero-filled read buffer (see `config`).
    let reads = Gate::new();
    // Cancelled when this session ends: a replay read from the store
    // stops with it.
    let (token, _cancel_on_drop) = request_token();
    let told = loop {
        tokio::select! {
            biased;
            _ = aborted.as_mut() => return Ending::Aborted,
            told = &mut closing => break told,
            next = std::future::poll_fn(|cx| reads.poll(cx, |cx| socket.poll_next_unpin(cx))) => match next {
                Some(Ok(Message::Close(_))) => return session::finish(&mut socket, aborted).await,
                Some(Ok(_)) => watch.heard(),
                Some(Err(e)) => return session::fail(&mut socket, e, &watch, aborted).await,
                None => return Ending::Broken,
            },
            entries = app.feed.after(&*app.store, after, BATCH, &token) => {
                let entries = match entries {
                    Ok(entries) => entries,
                    Err(_) => {
                        let frame = CloseFrame {
                            code: CloseCode::Again,
                            reason: "store unavailable; reconnect later".into(),
                        };
                        return session::goodbye(&mut socket, frame, aborted).await;
                    }
                };
                for entry in entries {
                    // Queued, not flushed: one flush for the batch.
                    if socket.feed(Message::Text(entry.json)).await.is_err() {
                        return Ending::Broken;
                    }
                    after = entry.id;
                }
                if socket.flush().await.is_err() {
                    return Ending::Broken;
                }
            },
            due = watch.ping_due() => {
                if let Err(ending) = watch.ping(&mut socket, due).await {
                    return ending;
                }
            },
        }
    };
    // Told to go (the drain, or the session's age): everything sent so
    // far went out first (each batch was flushed); now the Close frame,
    // and the wait for the client's.
    session::say_goodbye(&app, &mut socket, told, aborted).await
}
