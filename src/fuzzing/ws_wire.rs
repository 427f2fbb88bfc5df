//! Reading WebSocket frames back (RFC 6455 §5): the server's strictly, to
//! check every rule a server must keep, and the client's leniently, to
//! know which messages the server should have seen.
//!
//! The two sides break different rules on purpose: the client is the
//! fuzzer, so its frames may be anything, and the reading stops where the
//! server rightly fails the connection (tungstenite's checks, restated).
//! The server's frames must all be well formed; the first one that is not
//! is the finding.

/// Continuation frame (RFC 6455 §5.2).
pub const CONTINUATION: u8 = 0x0;
/// Text frame.
pub const TEXT: u8 = 0x1;
/// Binary frame.
pub const BINARY: u8 = 0x2;
/// Close frame.
pub const CLOSE: u8 = 0x8;
/// Ping frame.
pub const PING: u8 = 0x9;
/// Pong frame.
pub const PONG: u8 = 0xA;

/// The largest payload of a control frame (RFC 6455 §5.5).
const MAX_CONTROL: usize = 125;

/// One frame, its payload unmasked.
#[derive(Debug, Clone)]
pub struct WsFrame {
    /// Where the frame starts, counted from the first byte read.
    pub offset: usize,
    pub fin: bool,
    /// RSV1-3, as the three low bits.
    pub rsv: u8,
    pub opcode: u8,
    pub masked: bool,
    /// True if the length took the fewest bytes it could (§5.2: "the
    /// minimal number of bytes MUST be used").
    pub minimal_length: bool,
    pub payload: Vec<u8>,
}

impl WsFrame {
    fn is_control(&self) -> bool {
        self.opcode & 0x8 != 0
    }
}

/// One message, its fragments joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsMessage {
    Text(Vec<u8>),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    /// The status code and reason, if the frame had a payload.
    Close(Option<(u16, Vec<u8>)>),
}

/// Who sent the frames: the rules differ (§5.1, masking).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sender {
    Client,
    Server,
}

/// The frame at the front of `buf`, and its length; `None` if `buf` ends
/// inside it. `base` is `buf[0]`'s offset.
fn next_frame(buf: &[u8], base: usize) -> Option<(WsFrame, usize)> {
    let [b0, b1, ..] = *buf else { return None };
    let (len, mut at, minimal) = match b1 & 0x7F {
        126 => {
            let n = u16::from_be_bytes(buf.get(2..4)?.try_into().ok()?);
            (u64::from(n), 4, n >= 126)
        }
        127 => {
            let n = u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?);
            // The top bit set is not minimal either: no encoding allows it.
            (n, 10, n > u64::from(u16::MAX) && n >> 63 == 0)
        }
        n => (u64::from(n), 2, true),
    };
    let masked = b1 & 0x80 != 0;
    let mask = if masked {
        let key: [u8; 4] = buf.get(at..at + 4)?.try_into().ok()?;
        at += 4;
        Some(key)
    } else {
        None
    };
    let end = at.checked_add(usize::try_from(len).ok()?)?;
    let mut payload = buf.get(at..end)?.to_vec();
    if let Some(key) = mask {
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= key[i % 4];
        }
    }
    let frame = WsFrame {
        offset: base,
        fin: b0 & 0x80 != 0,
        rsv: (b0 >> 4) & 0x7,
        opcode: b0 & 0x0F,
        masked,
        minimal_length: minimal,
        payload,
    };
    Some((frame, end))
}

/// The rules each frame keeps on its own (§5.2, §5.5), for `sender`.
fn check_frame(frame: &WsFrame, sender: Sender) -> Result<(), String> {
    let at = frame.offset;
    if frame.rsv != 0 {
        return Err(format!("RSV bits {:#05b} set at {at}", frame.rsv));
    }
    if !matches!(
        frame.opcode,
        CONTINUATION | TEXT | BINARY | CLOSE | PING | PONG
    ) {
        return Err(format!("reserved opcode {:#x} at {at}", frame.opcode));
    }
    if frame.is_control() && !frame.fin {
        return Err(format!("fragmented control frame at {at}"));
    }
    if frame.is_control() && frame.payload.len() > MAX_CONTROL {
        return Err(format!(
            "control frame of {} bytes at {at}",
            frame.payload.len()
        ));
    }
    match sender {
        // §5.1: a client masks every frame, a server none.
        Sender::Client if !frame.masked => Err(format!("unmasked client frame at {at}")),
        Sender::Server if frame.masked => Err(format!("masked server frame at {at}")),
        Sender::Server if !frame.minimal_length => {
            Err(format!("length not minimally encoded at {at}"))
        }
        _ => Ok(()),
    }
}

/// Joins frames into messages, keeping the rules between frames:
/// fragments (§5.4), UTF-8 text (§8.1), the Close frame's body (§5.5.1)
/// and nothing after a Close.
#[derive(Debug, Default)]
struct Assembler {
    /// The message being fragmented: its opcode and what came so far.
    partial: Option<(u8, Vec<u8>)>,
    closed: bool,
}

impl Assembler {
    fn push(&mut self, frame: WsFrame) -> Result<Option<WsMessage>, String> {
        let at = frame.offset;
        if self.closed {
            return Err(format!("frame after the Close, at {at}"));
        }
        let data = match (frame.opcode, self.partial.take()) {
            (CLOSE, partial) => {
                self.partial = partial; // A control frame may come between fragments.
                self.closed = true;
                return close_body(&frame.payload)
                    .map(|body| Some(WsMessage::Close(body)))
                    .map_err(|e| format!("{e}, in the Close at {at}"));
            }
            (PING, partial) => {
                self.partial = partial;
                return Ok(Some(WsMessage::Ping(frame.payload)));
            }
            (PONG, partial) => {
                self.partial = partial;
                return Ok(Some(WsMessage::Pong(frame.payload)));
            }
            (CONTINUATION, None) => return Err(format!("continuation with no message, at {at}")),
            (CONTINUATION, Some((opcode, mut so_far))) => {
                so_far.extend_from_slice(&frame.payload);
                (opcode, so_far)
            }
            (_, Some(_)) => return Err(format!("new message inside a fragmented one, at {at}")),
            (opcode, None) => (opcode, frame.payload),
        };
        if !frame.fin {
            self.partial = Some(data);
            return Ok(None);
        }
        match data {
            (TEXT, text) if std::str::from_utf8(&text).is_err() => {
                Err(format!("text message of invalid UTF-8, ending at {at}"))
            }
            (TEXT, text) => Ok(Some(WsMessage::Text(text))),
            (_, binary) => Ok(Some(WsMessage::Binary(binary))),
        }
    }
}

/// A Close frame's body: nothing, or a code and a UTF-8 reason.
fn close_body(payload: &[u8]) -> Result<Option<(u16, Vec<u8>)>, String> {
    match payload {
        [] => Ok(None),
        [_] => Err("a one-byte body".into()),
        [hi, lo, reason @ ..] => {
            if std::str::from_utf8(reason).is_err() {
                return Err("a reason of invalid UTF-8".into());
            }
            Ok(Some((u16::from_be_bytes([*hi, *lo]), reason.to_vec())))
        }
    }
}

/// What the server wrote after its `101`, as frames and messages. Fails at
/// the first broken rule, or if the output ends inside a frame (every
/// write the server makes is whole; a connection is never cut mid-frame
/// here). Offsets count from `base`.
pub fn server_frames(out: &[u8], base: usize) -> Result<(Vec<WsFrame>, Vec<WsMessage>), String> {
    let mut frames = Vec::new();
    let mut messages = Vec::new();
    let mut assembler = Assembler::default();
    let mut at = 0;
    while at < out.len() {
        let Some((frame, len)) = next_frame(&out[at..], base + at) else {
            return Err(format!("output ends inside the frame at {}", base + at));
        };
        check_frame(&frame, Sender::Server)?;
        frames.push(frame.clone());
        messages.extend(assembler.push(frame)?);
        at += len;
    }
    Ok((frames, messages))
}

/// The messages the client sent, up to the first frame a server must
/// fail the connection for (or that is cut short), and up to its Close,
/// included: what the server reads and answers. A message longer than
/// the server's limit is not looked for: the comparison with what the
/// server did only needs the messages before the point where it stopped.
pub fn client_messages(sent: &[u8]) -> Vec<WsMessage> {
    let mut messages = Vec::new();
    let mut assembler = Assembler::default();
    let mut at = 0;
    while let Some((frame, len)) = next_frame(&sent[at..], at) {
        if check_frame(&frame, Sender::Client).is_err() {
            break;
        }
        match assembler.push(frame) {
            Ok(Some(message)) => {
                let closed = matches!(message, WsMessage::Close(_));
                messages.push(message);
                if closed {
                    break;
                }
            }
            Ok(None) => {}
            Err(_) => break,
        }
        at += len;
    }
    messages
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server frame: unmasked, minimal length.
    fn frame(b0: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![b0];
        match payload.len() {
            n @ 0..=125 => out.push(n as u8),
            n @ 126..=0xFFFF => {
                out.push(126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(payload);
        out
    }

    /// Well-formed server output reads back as its messages, fragments
    /// joined and a control frame between them.
    #[test]
    fn well_formed_server_frames_read_back_as_messages() {
        let mut out = frame(0x01, b"hel");
        out.extend(frame(0x89, b""));
        out.extend(frame(0x80, b"lo"));
        out.extend(frame(0x82, &[7; 300]));
        out.extend(frame(0x88, b"\x03\xe9bye"));
        let (frames, messages) = server_frames(&out, 0).unwrap();
        assert_eq!(frames.len(), 5);
        assert_eq!(
            messages,
            [
                WsMessage::Ping(vec![]),
                WsMessage::Text(b"hello".to_vec()),
                WsMessage::Binary(vec![7; 300]),
                WsMessage::Close(Some((1001, b"bye".to_vec()))),
            ]
        );
    }

    /// Each rule a server must keep is checked: a frame breaking it fails
    /// the reading, naming where.
    #[test]
    fn server_frames_that_break_a_rule_are_refused() {
        let cases: [(Vec<u8>, &str); 8] = [
            (
                [frame(0x88, b""), frame(0x81, b"x")].concat(),
                "after the Close",
            ),
            (frame(0xC1, b"x"), "RSV"),
            (frame(0x83, b"x"), "reserved opcode"),
            (frame(0x09, b""), "fragmented control"),
            (frame(0x89, &[0; 126]), "control frame of 126"),
            (vec![0x81, 0x81, 0, 0, 0, 0, b'x'], "masked"),
            (vec![0x81, 126, 0, 1, b'x'], "minimally"),
            (frame(0x81, b"\xff"), "invalid UTF-8"),
        ];
        for (out, expected) in cases {
            let e = server_frames(&out, 0).unwrap_err();
            assert!(e.contains(expected), "{e:?} should say {expected:?}");
        }
        assert!(server_frames(&frame(0x88, b"\x03"), 0).is_err());
        assert!(server_frames(&frame(0x81, b"abc")[..3], 0).is_err());
    }

    /// The client's messages are read up to the first frame the server
    /// must refuse (here, an unmasked one), unmasked.
    #[test]
    fn client_messages_stop_at_the_first_frame_the_server_refuses() {
        let mut sent = vec![0x81, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2];
        sent.extend(frame(0x81, b"unmasked"));
        assert_eq!(client_messages(&sent), [WsMessage::Text(b"hi".to_vec())]);
    }
}
