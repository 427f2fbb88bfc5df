//! `GET /api/ws/echo`: every text or binary message comes back as it
//! came. It exists so that a conformance suite (the Autobahn|Testsuite,
//! `tests/autobahn.rs`) can test the WebSocket implementation itself:
//! framing, fragmentation, UTF-8, pings, the closing handshake. At a
//! shutdown it ends like the hub.

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::Socket;
use super::session::{self, Watch};
use crate::app::App;
use crate::long_lived::sockets::Ending;

/// The largest message echoed, 16 MiB: the largest the conformance suite
/// sends. Each socket may hold one message this size while it echoes it.
pub const MAX_MESSAGE: usize = 16 * 1024 * 1024;

/// What an echo client may send.
pub fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE))
}

/// One echo session.
pub async fn run(app: Arc<App>, mut socket: Socket) -> Ending {
    let mut watch = Watch::new(&app);
    // The forced close: one wait for the session's life (`session::Aborted`).
    let mut aborted = std::pin::pin!(app.shutdown.streams_aborted());
    // The drain, at this session's own instant in the spread window, or
    // the session's age.
    let mut closing = std::pin::pin!(session::told_to_go(&app));
    let told = loop {
        tokio::select! {
            biased;
            _ = aborted.as_mut() => return Ending::Aborted,
            told = &mut closing => break told,
            next = socket.next() => {
                watch.heard();
                match next {
                    Some(Ok(message @ (Message::Text(_) | Message::Binary(_)))) => {
                        if socket.send(message).await.is_err() {
                            return Ending::Broken;
                        }
                    }
                    Some(Ok(Message::Close(_))) => return session::finish(&mut socket, aborted).await,
                    // Pings are answered by tungstenite itself.
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return session::fail(&mut socket, e, &watch, aborted).await,
                    None => return Ending::Broken,
                }
            },
            due = watch.ping_due() => {
                if let Err(ending) = watch.ping(&mut socket, due).await {
                    return ending;
                }
            },
        }
    };
    session::say_goodbye(&app, &mut socket, told, aborted).await
}
