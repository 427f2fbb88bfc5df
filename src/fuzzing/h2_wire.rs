//! Reading back what the server wrote on an HTTP/2 connection: a sequence
//! of whole frames, starting with the server's SETTINGS.

/// The GOAWAY frame type (RFC 9113 §6.8).
pub const GOAWAY: u8 = 0x7;
/// The SETTINGS frame type (RFC 9113 §6.5).
pub const SETTINGS: u8 = 0x4;

/// One frame header found in the output.
#[derive(Debug, Clone, Copy)]
pub struct WireFrame {
    /// Where the frame starts in the output.
    pub offset: usize,
    /// Frame type.
    pub kind: u8,
    /// Stream id.
    pub stream: u32,
    /// Payload length.
    pub len: usize,
}

/// Splits `out` into frames. Fails if the output does not start with a
/// SETTINGS frame on stream 0 or ends inside a frame.
pub fn parse_frames(out: &[u8]) -> Result<Vec<WireFrame>, String> {
    let mut frames = Vec::new();
    let mut at = 0;
    while at < out.len() {
        let Some(head) = out.get(at..at + 9) else {
            return Err(format!("frame header cut at {at}"));
        };
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let frame = WireFrame {
            offset: at,
            kind: head[3],
            stream: u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff,
            len,
        };
        if at + 9 + len > out.len() {
            return Err(format!("frame payload cut at {at}"));
        }
        frames.push(frame);
        at += 9 + len;
    }
    match frames.first() {
        None => {}
        Some(f) if f.kind == SETTINGS && f.stream == 0 => {}
        Some(f) => {
            return Err(format!(
                "first frame is type {} on stream {}",
                f.kind, f.stream
            ));
        }
    }
    Ok(frames)
}
