//! What every WebSocket session does besides its own work: pings, and the
//! end, polite or forced.
//!
//! A session is a loop over one `select!`; the forced close ([`Aborted`])
//! and the ping clock ([`Watch`]) are the parts of it every session
//! shares. Its branches, in the order they are polled:
//!
//! 1. **the forced close** (`abort_streams`, at the deadline or a second
//!    signal): the socket is dropped at once, and counted as aborted;
//! 2. **the drain** (`closing`): the session stops its own work, sends a
//!    Close frame after everything it had queued, and waits for the
//!    peer's Close ([`goodbye`]). The code says why: **1012** (service
//!    restart) when a new process has taken over the socket, so the
//!    client reconnects at once, and **1001** (going away) at a shutdown;
//! 3. the session's own branches (the peer's messages, the feed);
//! 4. **the ping timer**: a socket the peer has sent nothing on for
//!    `--ws-ping-interval` is pinged; if nothing comes back within
//!    `--ws-ping-timeout` it is closed (1001, "ping timeout") and dropped,
//!    without waiting for a Close the peer is evidently not sending.
//!
//! The closing handshake (RFC 6455 §7) is what makes the end clean: the
//! server sends Close, the client answers Close, and only then does the
//! server close the TCP connection, so the client sees a code and a
//! reason (not 1006, abnormal closure) and knows it may reconnect. A
//! client that never answers holds its socket until the forced close,
//! like a request that never finishes.

use std::pin::Pin;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::time::{Instant, Sleep};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Bytes, Error, Message};

use super::Socket;
use crate::app::App;
use crate::long_lived::sockets::Ending;
use crate::shutdown::stop::Stop;
use crate::shutdown::token_wait::TokenWait;

/// The forced close, as every session waits for it: one
/// `ShutdownState::streams_aborted`, pinned for the session's life. A
/// session's loop turns at every message it sends or receives, and a
/// fresh wait on the token at each turn would take the token's lock,
/// which every session and stream shares, twice per turn (see
/// [`TokenWait`]).
pub type Aborted<'a, 'b> = Pin<&'a mut TokenWait<'b>>;

/// The ping clock, for one session.
pub struct Watch {
    ping_every: Duration,
    ping_timeout: Duration,
    /// When the peer last sent anything (a pong counts).
    heard: Instant,
    /// When the unanswered ping went out, if one did.
    pinged: Option<Instant>,
    /// One timer for the session's life. It is set for when a ping could
    /// first be due, and moved on only when it fires early (the peer was
    /// heard meanwhile): a message from the peer only writes `heard`.
    /// A timer made again at every turn of the session's loop would be
    /// entered into the runtime's timer wheel and taken out again for
    /// every item the hub sends.
    timer: Pin<Box<Sleep>>,
}

/// What the ping timer says, when it fires.
pub enum PingDue {
    /// Send a ping now.
    Ping,
    /// The last ping went unanswered: the peer is gone.
    TimedOut,
}

impl Watch {
    pub fn new(app: &App) -> Self {
        let heard = Instant::now();
        let ping_every = app.config.ws_ping_interval;
        Watch {
            ping_every,
            ping_timeout: app.config.ws_ping_timeout,
            heard,
            pinged: None,
            timer: Box::pin(tokio::time::sleep_until(heard + ping_every)),
        }
    }

    /// The peer sent something: it is alive.
    pub fn heard(&mut self) {
        self.heard = Instant::now();
        self.pinged = None;
    }

    /// Resolves when a ping is due, or the last one went unanswered, and
    /// says which. Cancel-safe: what it knows is in `self`.
    pub async fn ping_due(&mut self) -> PingDue {
        loop {
            (&mut self.timer).await;
            let due = match self.pinged {
                Some(at) => at + self.ping_timeout,
                None => self.heard + self.ping_every,
            };
            if due <= Instant::now() {
                return match self.pinged {
                    Some(_) => PingDue::TimedOut,
                    None => PingDue::Ping,
                };
            }
            // Heard from since the timer was set: not due yet.
            self.timer.as_mut().reset(due);
        }
    }

    /// Sends a ping, or closes a peer that left the last one unanswered.
    /// `Err` ends the session.
    pub async fn ping(&mut self, socket: &mut Socket, due: PingDue) -> Result<(), Ending> {
        match due {
            PingDue::Ping => {
                let now = Instant::now();
                self.pinged = Some(now);
                self.timer.as_mut().reset(now + self.ping_timeout);
                socket
                    .send(Message::Ping(Bytes::new()))
                    .await
                    .map_err(|_| Ending::Broken)
            }
            PingDue::TimedOut => {
                let frame = close_frame(CloseCode::Away, "ping timeout");
                // Best effort: the peer is not reading, so the frame may
                // never leave; the socket is dropped either way.
                let _ = tokio::time::timeout(
                    self.ping_timeout,
                    socket.send(Message::Close(Some(frame))),
                )
                .await;
                Err(Ending::Broken)
            }
        }
    }
}

/// Why a session is told to go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Told {
    /// The drain, at the session's instant in the spread window.
    Drain,
    /// Its `--max-connection-age`.
    Age,
}

/// Resolves when the session is told to go, and says why: the drain (at
/// its own instant in the spread window) or its age.
pub async fn told_to_go(app: &App) -> Told {
    let key = app.shutdown.spread().draw(u64::MAX);
    tokio::select! {
        _ = app.shutdown.goodbye() => Told::Drain,
        _ = crate::conn::max_age::reached(app.config.max_connection_age, key) => Told::Age,
    }
}

/// The goodbye for `told`: at the drain, [`shutdown_frame`] and a wait for
/// the client's Close until the forced close; at its age, Close 1001
/// "connection age", and a wait of at most `--max-connection-age-grace`.
pub async fn say_goodbye(
    app: &App,
    socket: &mut Socket,
    told: Told,
    aborted: Aborted<'_, '_>,
) -> Ending {
    match told {
        Told::Drain => goodbye(socket, shutdown_frame(app), aborted).await,
        Told::Age => {
            let frame = close_frame(CloseCode::Away, "connection age");
            let grace = app.config.max_connection_age_grace;
            tokio::time::timeout(grace, goodbye(socket, frame, aborted))
                .await
                .unwrap_or(Ending::Broken)
        }
    }
}

/// The drain's Close frame: 1012 when a new process serves the socket
/// now (the client should reconnect at once), 1001 at a shutdown.
pub fn shutdown_frame(app: &App) -> CloseFrame {
    match app.shutdown.cause() {
        Some(Stop::Upgrade { .. }) => close_frame(CloseCode::Restart, "server restarting"),
        _ => close_frame(CloseCode::Away, "server shutting down"),
    }
}

/// Sends `frame` (after whatever was queued before it) and waits for the
/// peer's Close, until the forced close. How the session ended.
pub async fn goodbye(
    socket: &mut Socket,
    frame: CloseFrame,
    mut aborted: Aborted<'_, '_>,
) -> Ending {
    let sent = tokio::select! {
        biased;
        _ = aborted.as_mut() => return Ending::Aborted,
        sent = socket.send(Message::Close(Some(frame))) => sent,
    };
    if sent.is_err() {
        return Ending::Broken;
    }
    finish(socket, aborted).await
}

/// Our Close has gone out, or the peer's has come (and tungstenite has
/// queued the answer): reads until the stream ends, which it does once
/// both Close frames have crossed. Messages that arrive meanwhile are
/// dropped: the peer sent them before it saw our Close, and the session
/// has stopped taking work.
pub async fn finish(socket: &mut Socket, mut aborted: Aborted<'_, '_>) -> Ending {
    loop {
        tokio::select! {
            biased;
            _ = aborted.as_mut() => return Ending::Aborted,
            next = socket.next() => match next {
                Some(Ok(_)) => continue,
                // The end of the stream after both Close frames.
                None | Some(Err(Error::ConnectionClosed)) => return Ending::Closed,
                Some(Err(_)) => return Ending::Broken,
            },
        }
    }
}

/// The peer broke the protocol (`error`): tells it why, with the code
/// RFC 6455 §7.4.1 gives, and ends the session. An IO error needs no
/// frame: the connection is gone.
pub async fn fail(
    socket: &mut Socket,
    error: Error,
    watch: &Watch,
    aborted: Aborted<'_, '_>,
) -> Ending {
    let frame = match error {
        Error::Utf8(_) => close_frame(CloseCode::Invalid, "invalid UTF-8"),
        Error::Capacity(_) => close_frame(CloseCode::Size, "message too big"),
        Error::Protocol(_) => close_frame(CloseCode::Protocol, "protocol error"),
        _ => return Ending::Broken,
    };
    // A peer that broke the protocol gets as long to answer as a ping.
    match tokio::time::timeout(watch.ping_timeout, goodbye(socket, frame, aborted)).await {
        Ok(Ending::Aborted) => Ending::Aborted,
        _ => Ending::Broken,
    }
}

fn close_frame(code: CloseCode, reason: &'static str) -> CloseFrame {
    CloseFrame {
        code,
        reason: reason.into(),
    }
}
