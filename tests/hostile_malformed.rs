//! Malformed and oversized requests get a clear status, and the shapes
//! used for request smuggling never leave a second request on the wire.

mod support;

use std::time::Duration;

use support::http::{self, Conn, Response};
use support::{TestServer, test_config};

/// Sends `raw` on a fresh connection and reads one response.
async fn exchange(server: &TestServer, raw: &[u8]) -> (Response, Conn) {
    let mut conn = http::connect(server.addr).await;
    http::send(&mut conn, raw).await;
    let res = http::read_response(&mut conn)
        .await
        .expect("an answer, not a silent close");
    (res, conn)
}

/// Asserts the server closes `conn` (EOF or reset) and sends nothing more:
/// no answer to a request smuggled behind the first.
async fn assert_closed_with_nothing_more(conn: &mut Conn) {
    let extra = http::closed_within(conn, Duration::from_secs(5)).await;
    assert!(
        extra.is_empty(),
        "nothing may follow: {:?}",
        String::from_utf8_lossy(&extra)
    );
}

/// A request head bigger than `--max-header-bytes` (64 KiB by default, for
/// the whole head) gets 431 and the connection is closed.
#[tokio::test]
async fn a_head_over_max_header_bytes_gets_431() {
    let server = TestServer::start(test_config()).await;
    let filler = "a".repeat(8000);
    let mut raw = String::from("GET /healthz HTTP/1.1\r\nHost: test\r\n");
    for i in 0..9 {
        raw.push_str(&format!("X-Filler-{i}: {filler}\r\n")); // 9 × 8 KB > 64 KiB
    }
    raw.push_str("\r\n");
    let (res, mut conn) = exchange(&server, raw.as_bytes()).await;
    assert_eq!(res.status, 431);
    assert_closed_with_nothing_more(&mut conn).await;

    // Just under the limit is fine.
    let mut raw = String::from("GET /healthz HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    for i in 0..7 {
        raw.push_str(&format!("X-Filler-{i}: {filler}\r\n"));
    }
    raw.push_str("\r\n");
    let (res, _) = exchange(&server, raw.as_bytes()).await;
    assert_eq!(res.status, 200);
}

/// More than 100 header fields gets 431 (hyper's limit on fields).
#[tokio::test]
async fn more_than_100_header_fields_gets_431() {
    let server = TestServer::start(test_config()).await;
    let mut raw = String::from("GET /healthz HTTP/1.1\r\nHost: test\r\n");
    for i in 0..101 {
        raw.push_str(&format!("X-Field-{i}: v\r\n"));
    }
    raw.push_str("\r\n");
    let (res, mut conn) = exchange(&server, raw.as_bytes()).await;
    assert_eq!(res.status, 431);
    assert_closed_with_nothing_more(&mut conn).await;
}

/// Both `Content-Length` and `Transfer-Encoding`: hyper reads the body as
/// chunked (Transfer-Encoding wins, RFC 9112 §6.1), drops the length, and
/// closes the connection after answering, so the request hidden behind the
/// chunked body is never read. Here the chunked body is empty, which the
/// create handler answers with 400.
#[tokio::test]
async fn content_length_with_transfer_encoding_gets_400_and_close() {
    let server = TestServer::start(test_config()).await;
    let raw = b"POST /api/items HTTP/1.1\r\nHost: test\r\nContent-Length: 44\r\n\
        Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n\
        POST /api/items HTTP/1.1\r\nHost: test\r\n\r\n";
    let (res, mut conn) = exchange(&server, raw).await;
    assert_eq!(res.status, 400);
    assert!(res.closes(), "{res:?}");
    assert_closed_with_nothing_more(&mut conn).await;
    assert_eq!(server.app.metrics.requests_total(), 1, "one request served");
}

/// Two `Content-Length` fields that disagree: 400 from hyper's parser, and
/// the connection is closed.
#[tokio::test]
async fn differing_duplicate_content_lengths_get_400_and_close() {
    let server = TestServer::start(test_config()).await;
    let raw = b"POST /api/items HTTP/1.1\r\nHost: test\r\nContent-Length: 12\r\n\
        Content-Length: 3\r\n\r\n{\"name\":\"x\"}";
    let (res, mut conn) = exchange(&server, raw).await;
    assert_eq!(res.status, 400);
    assert_closed_with_nothing_more(&mut conn).await;
    assert_eq!(server.app.metrics.requests_total(), 0, "no handler ran");
}

/// A chunk size that is not hex: the body breaks off, the handler answers
/// 400 with `Connection: close`, and the connection is closed.
#[tokio::test]
async fn an_invalid_chunk_size_gets_400_and_close() {
    let server = TestServer::start(test_config()).await;
    let raw = b"POST /api/items HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n\
        zz\r\n{\"name\":\"x\"}\r\n0\r\n\r\nGET /healthz HTTP/1.1\r\nHost: test\r\n\r\n";
    let (res, mut conn) = exchange(&server, raw).await;
    assert_eq!(res.status, 400);
    assert!(res.closes(), "{res:?}");
    assert_closed_with_nothing_more(&mut conn).await;
}

/// A JSON body that is not UTF-8 gets 400, not a panic or a 500.
#[tokio::test]
async fn invalid_utf8_in_a_json_body_gets_400() {
    let server = TestServer::start(test_config()).await;
    let body = b"{\"name\":\"\xff\xfe\"}";
    let mut raw = format!(
        "POST /api/items HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(body);
    let (res, _conn) = exchange(&server, &raw).await;
    assert_eq!(res.status, 400);
    assert!(res.text().contains("invalid JSON"), "{}", res.text());
}

/// Garbage instead of a request line gets 400 and a close.
#[tokio::test]
async fn garbage_instead_of_a_request_gets_400() {
    let server = TestServer::start(test_config()).await;
    let (res, mut conn) = exchange(&server, b"\x01\x02 nonsense \x7f\r\n\r\n").await;
    assert_eq!(res.status, 400);
    assert_closed_with_nothing_more(&mut conn).await;
}
