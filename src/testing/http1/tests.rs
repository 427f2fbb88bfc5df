//! The reader against the framings a server may use.

use super::{Framing, Method, Response, ResponseReader, next_chunk};

/// Feeds `bytes` in one go and takes every response out.
fn all(bytes: &[u8], method: Method, ended: bool) -> Vec<Response> {
    let mut reader = ResponseReader::new();
    reader.feed(bytes);
    if ended {
        reader.end();
    }
    std::iter::from_fn(|| reader.next(method).unwrap()).collect()
}

/// Pipelined answers in one read come out one by one, in order, each at
/// its offset, and the partial third one waits as leftover.
#[test]
fn pipelined_responses_come_out_in_order_and_the_rest_is_kept() {
    let first = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
    let second = b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n";
    let third = b"HTTP/1.1 201 Created\r\ncontent-len";
    let mut reader = ResponseReader::new();
    reader.feed(&[&first[..], second, third].concat());
    let a = reader.next(Method::Other).unwrap().unwrap();
    let b = reader.next(Method::Other).unwrap().unwrap();
    assert_eq!((a.status, a.text(), a.offset), (200, "ok".into(), 0));
    assert_eq!((b.status, b.offset), (404, first.len()));
    assert!(reader.next(Method::Other).unwrap().is_none());
    assert_eq!(reader.leftover(), third);
    reader.feed(b"gth: 1\r\n\r\nx");
    let c = reader.next(Method::Other).unwrap().unwrap();
    assert_eq!((c.status, c.text()), (201, "x".into()));
    assert_eq!(c.offset, first.len() + second.len());
}

/// A response fed a byte at a time comes out once, when its last byte is
/// in, the same as when it arrives whole.
#[test]
fn a_response_split_across_reads_comes_out_whole() {
    let raw =
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
    let mut reader = ResponseReader::new();
    for (i, byte) in raw.iter().enumerate() {
        assert!(
            reader.next(Method::Other).unwrap().is_none(),
            "early at {i}"
        );
        reader.feed(&[*byte]);
    }
    let res = reader.next(Method::Other).unwrap().unwrap();
    assert_eq!((res.text(), res.complete), ("abcde".into(), true));
    assert!(reader.leftover().is_empty());
}

/// A chunked body with extensions and trailer fields is de-chunked, the
/// trailers are kept apart, and the next response starts after them.
#[test]
fn a_chunked_body_with_trailers_is_dechunked() {
    let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
        4;ext=1\r\nwiki\r\n5\r\npedia\r\n0\r\nExpires: never\r\nX-Sum: 9\r\n\r\n\
        HTTP/1.1 204 No Content\r\n\r\n";
    let got = all(raw, Method::Other, false);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].text(), "wikipedia");
    assert_eq!(got[0].framing, Framing::Chunked);
    assert_eq!(
        got[0].trailers,
        [
            ("expires".to_string(), "never".to_string()),
            ("x-sum".to_string(), "9".to_string())
        ]
    );
    assert_eq!(got[1].status, 204);
}

/// HTTP/1.0 closes unless it says keep-alive; `Connection` is a comma
/// list, in any case, over any number of fields.
#[test]
fn connection_lists_and_http10_decide_whether_the_connection_closes() {
    let closes = |head: &str| {
        let raw = format!("{head}\r\ncontent-length: 0\r\n\r\n");
        all(raw.as_bytes(), Method::Other, false)[0].closes()
    };
    assert!(!closes("HTTP/1.1 200 OK"));
    assert!(closes("HTTP/1.1 200 OK\r\nConnection: close"));
    assert!(closes("HTTP/1.1 200 OK\r\nconnection: keep-alive, Close"));
    assert!(closes(
        "HTTP/1.1 200 OK\r\nconnection: upgrade\r\nconnection: close"
    ));
    assert!(closes("HTTP/1.0 200 OK"));
    assert!(!closes("HTTP/1.0 200 OK\r\nConnection: Keep-Alive"));
    assert!(closes("HTTP/1.0 200 OK\r\nConnection: keep-alive, close"));
    let res = &all(b"HTTP/1.0 200 OK\r\n\r\nhi", Method::Other, true)[0];
    assert_eq!((res.minor_version, res.text()), (0, "hi".into()));
}

/// No body after 1xx, 204, 304 or an answer to HEAD, whatever the head
/// announces; the interim 100 comes out on its own.
#[test]
fn bodiless_answers_and_head_read_no_body() {
    let raw = b"HTTP/1.1 100 Continue\r\n\r\n\
        HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\nok\
        HTTP/1.1 304 Not Modified\r\ncontent-length: 9\r\n\r\n";
    let got = all(raw, Method::Other, false);
    let seen: Vec<_> = got
        .iter()
        .map(|r| (r.status, r.is_interim(), r.text()))
        .collect();
    assert_eq!(
        seen,
        [
            (100, true, "".into()),
            (201, false, "ok".into()),
            (304, false, "".into())
        ]
    );
    let head =
        b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
    assert_eq!(all(head, Method::Head, false).len(), 2);
    assert_eq!(
        all(head, Method::Unknown, true).len(),
        2,
        "guessed bodiless"
    );
}

/// A body with neither length nor chunking lasts until the close; one cut
/// short by the close comes out marked incomplete.
#[test]
fn close_delimited_and_cut_bodies_end_at_the_close() {
    let mut reader = ResponseReader::new();
    reader.feed(b"HTTP/1.1 200 OK\r\n\r\nall of");
    assert!(reader.next(Method::Other).unwrap().is_none());
    reader.feed(b" it");
    reader.end();
    let res = reader.next(Method::Other).unwrap().unwrap();
    assert_eq!(
        (res.text(), res.framing, res.complete),
        ("all of it".into(), Framing::Close, true)
    );
    assert!(reader.next(Method::Other).unwrap().is_none());

    let cut = &all(
        b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nhalf",
        Method::Other,
        true,
    )[0];
    assert_eq!((cut.text(), cut.complete), ("half".into(), false));
    let mut reader = ResponseReader::new();
    reader.feed(b"HTTP/1.1 200 OK\r\ncontent-le");
    reader.end();
    assert!(reader.next(Method::Other).is_err(), "a head cut short");
}

/// The summary skips a response without building it, and says the same.
#[test]
fn a_summary_says_what_the_response_was() {
    let mut reader = ResponseReader::new();
    reader.feed(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n2\r\nok\r\n0\r\n\r\n");
    let sum = reader.next_summary(Method::Other).unwrap().unwrap();
    assert_eq!(
        (sum.status, sum.closes, sum.body_len, sum.complete),
        (200, true, 2, true)
    );
    assert!(reader.leftover().is_empty());
}

/// Garbage is an error naming where the response started.
#[test]
fn garbage_is_an_error_with_its_offset() {
    let mut reader = ResponseReader::new();
    reader.feed(b"HTTP/1.1 204 No Content\r\n\r\nnot a response\r\n\r\n");
    assert_eq!(reader.next(Method::Other).unwrap().unwrap().status, 204);
    assert_eq!(reader.next(Method::Other).unwrap_err().offset, 27);
}

/// Chunks come out one at a time for a stream read as it arrives.
#[test]
fn chunks_come_out_one_at_a_time() {
    let raw = b"5\r\nhello\r\n0\r\n\r\n";
    let first = next_chunk(raw).unwrap().unwrap();
    assert_eq!(&raw[first.data.clone()], b"hello");
    let last = next_chunk(&raw[first.len..]).unwrap().unwrap();
    assert!(last.is_last());
    assert_eq!(first.len + last.len, raw.len());
    assert_eq!(next_chunk(b"5\r\nhel").unwrap(), None);
}

/// The async reader keeps what one read brought beyond the first
/// response for the next call.
#[tokio::test]
async fn reading_from_a_stream_keeps_pipelined_leftovers() {
    let wire = b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\naHTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\nb";
    let mut io = &wire[..];
    let mut reader = ResponseReader::new();
    let a = reader
        .read_response(&mut io, Method::Other)
        .await
        .unwrap()
        .unwrap();
    let b = reader
        .read_response(&mut io, Method::Other)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((a.text(), b.text()), ("a".into(), "b".into()));
    assert!(
        reader
            .read_response(&mut io, Method::Other)
            .await
            .unwrap()
            .is_none()
    );
}
