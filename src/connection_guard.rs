//! The connection guard: every HTTP/1 request head is checked before actix-http reads it, so a
//! request refused at the protocol level — a request target or head too long, too many header
//! fields, a malformed head, ambiguous framing (`Content-Length` with `Transfer-Encoding`, two
//! different lengths) — gets the error envelope of SPEC §2.1 instead of actix-http's empty
//! answer.
//!
//! [`GuardedStream`] wraps each accepted TCP stream. As actix-http reads, the guard follows the
//! requests' framing (a head, then a `Content-Length` or chunked body, then the next head) and
//! parses each head with httparse — what actix-http parses with — under limits stricter than
//! actix-http's own (64 header fields against 96, a 64 KiB head against 128 KiB), so actix-http
//! never meets a head it would refuse. A refused head is never handed on: from its first byte
//! the stream reads as ended, actix-http finishes the responses it still owes and shuts the
//! connection down, and the guard writes the envelope response just before that shutdown.
//! A head costs one extra httparse pass (no copy unless it arrives in pieces).

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use actix_web::http::StatusCode;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::error::{ApiError, ErrorCode};

/// The longest request target (path and query) accepted, in bytes; longer → 414.
pub const MAX_REQUEST_TARGET: usize = 32 * 1024;
/// The longest request head (request line and header fields) accepted, in bytes; longer → 431.
pub const MAX_HEAD: usize = 64 * 1024;
/// The most header fields a request may carry; more → 431.
pub const MAX_HEADERS: usize = 64;

/// Where the reader is in the stream of requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// Reading a request head (its bytes so far are in `head` when it came in pieces).
    Head,
    /// Inside a `Content-Length` body: the bytes still to come.
    Body { remaining: u64 },
    /// Inside a chunked body.
    Chunked(Chunk),
    /// The connection left HTTP (an upgrade or CONNECT): nothing more is inspected.
    Passthrough,
}

/// Where the reader is in a chunked body (RFC 9112 §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// The chunk-size line: its value so far, whether a digit was seen, whether past `;`.
    Size {
        value: u64,
        digits: bool,
        extension: bool,
    },
    /// The LF closing the size line (`last`: the size was 0).
    SizeLf {
        size: u64,
    },
    /// Chunk data still to come.
    Data {
        remaining: u64,
    },
    /// The CR, then the LF, after chunk data.
    DataCr,
    DataLf,
    /// Trailer lines after the last chunk: the length of the current line, and whether it ends
    /// with a CR so far.
    Trailer {
        line: usize,
        cr: bool,
    },
}

/// A refusal: the status, the envelope's code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: String,
}

impl Refusal {
    fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Refusal {
            status,
            code,
            message: message.into(),
        }
    }

    fn malformed(message: impl Into<String>) -> Self {
        Refusal::new(StatusCode::BAD_REQUEST, ErrorCode::ValidationError, message)
    }

    fn target_too_long() -> Self {
        Refusal::new(
            StatusCode::URI_TOO_LONG,
            ErrorCode::PayloadTooLarge,
            format!("The request target is longer than {MAX_REQUEST_TARGET} bytes"),
        )
    }

    fn head_too_large() -> Self {
        Refusal::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            format!("The request head is larger than {MAX_HEAD} bytes"),
        )
    }

    /// The whole HTTP/1.1 response: the envelope, `Connection: close`, and a request id.
    pub fn response_bytes(&self) -> Vec<u8> {
        let request_id = crate::telemetry::new_request_id();
        let body = ApiError::new(self.code, self.message.clone())
            .body()
            .to_string();
        let reason = self.status.canonical_reason().unwrap_or("Error");
        format!(
            "HTTP/1.1 {} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
             connection: close\r\nx-request-id: {request_id}\r\n\r\n{body}",
            self.status.as_u16(),
            body.len(),
        )
        .into_bytes()
    }
}

/// Follows the framing of the requests on one connection and refuses a bad head.
#[derive(Debug)]
pub struct RequestReader {
    framing: Framing,
    /// The current head's bytes, when it arrives in more than one read.
    head: Vec<u8>,
}

impl Default for RequestReader {
    fn default() -> Self {
        RequestReader {
            framing: Framing::Head,
            head: Vec::new(),
        }
    }
}

/// What a head tells about the body that follows it.
fn body_framing(request: &httparse::Request<'_, '_>) -> Result<Framing, Refusal> {
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut transfer_encoding = false;
    let mut upgrade = false;
    let mut connection_upgrade = false;
    for header in request.headers.iter() {
        let name = header.name;
        if name.eq_ignore_ascii_case("content-length") {
            let text = std::str::from_utf8(header.value).unwrap_or_default().trim();
            let value = (!text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit()))
                .then(|| text.parse::<u64>().ok())
                .flatten()
                .ok_or_else(|| Refusal::malformed("Invalid Content-Length header"))?;
            if length.is_some_and(|known| known != value) {
                return Err(Refusal::malformed("Conflicting Content-Length headers"));
            }
            length = Some(value);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            transfer_encoding = true;
            let text = std::str::from_utf8(header.value).unwrap_or_default();
            chunked = text
                .rsplit(',')
                .next()
                .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
        } else if name.eq_ignore_ascii_case("upgrade") {
            upgrade = true;
        } else if name.eq_ignore_ascii_case("connection") {
            let text = std::str::from_utf8(header.value).unwrap_or_default();
            connection_upgrade = text
                .split(',')
                .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
        }
    }
    if transfer_encoding && length.is_some() {
        return Err(Refusal::malformed(
            "A request may not carry both Content-Length and Transfer-Encoding",
        ));
    }
    if transfer_encoding && !chunked {
        return Err(Refusal::malformed(
            "Transfer-Encoding must end with chunked",
        ));
    }
    if request.method == Some("CONNECT") || (upgrade && connection_upgrade) {
        return Ok(Framing::Passthrough);
    }
    if chunked {
        return Ok(Framing::Chunked(Chunk::Size {
            value: 0,
            digits: false,
            extension: false,
        }));
    }
    Ok(match length {
        Some(remaining) if remaining > 0 => Framing::Body { remaining },
        _ => Framing::Head,
    })
}

/// The refusal of an httparse error.
fn parse_refusal(error: httparse::Error) -> Refusal {
    match error {
        httparse::Error::TooManyHeaders => Refusal::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            format!("A request may carry at most {MAX_HEADERS} header fields"),
        ),
        other => Refusal::malformed(format!("Malformed request head: {other}")),
    }
}

/// Outcome of parsing a (possibly partial) head.
enum HeadParse {
    /// The head is complete: its length and the framing of its body.
    Complete(usize, Framing),
    Partial,
}

fn parse_head(bytes: &[u8]) -> Result<HeadParse, Refusal> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(bytes).map_err(parse_refusal)? {
        httparse::Status::Complete(length) => {
            if request
                .path
                .is_some_and(|path| path.len() > MAX_REQUEST_TARGET)
            {
                return Err(Refusal::target_too_long());
            }
            if length > MAX_HEAD {
                return Err(Refusal::head_too_large());
            }
            Ok(HeadParse::Complete(length, body_framing(&request)?))
        }
        httparse::Status::Partial => {
            let in_request_line = !bytes
                .iter()
                .skip_while(|byte| matches!(byte, b'\r' | b'\n'))
                .any(|byte| *byte == b'\n');
            if in_request_line && bytes.len() > MAX_REQUEST_TARGET + 64 {
                return Err(Refusal::target_too_long());
            }
            if bytes.len() > MAX_HEAD {
                return Err(Refusal::head_too_large());
            }
            Ok(HeadParse::Partial)
        }
    }
}

impl RequestReader {
    /// Follows `bytes`, just read from the client. `Some((kept, refusal))` when the stream must
    /// end for actix-http after the first `kept` bytes: a refused head starts there (or started
    /// in an earlier read), answered with `refusal`; or a chunked body breaks its framing there
    /// (`None`: actix-http answers that request itself, from the body it got).
    pub fn inspect(&mut self, bytes: &[u8]) -> Option<(usize, Option<Refusal>)> {
        let mut offset = 0;
        while offset < bytes.len() {
            let rest = &bytes[offset..];
            match self.framing {
                Framing::Passthrough => return None,
                Framing::Head => {
                    let outcome = if self.head.is_empty() {
                        parse_head(rest)
                    } else {
                        self.head.extend_from_slice(rest);
                        parse_head(&self.head)
                    };
                    match outcome {
                        Err(refusal) => return Some((offset, Some(refusal))),
                        Ok(HeadParse::Partial) => {
                            if self.head.is_empty() {
                                self.head.extend_from_slice(rest);
                            }
                            return None;
                        }
                        Ok(HeadParse::Complete(length, framing)) => {
                            // The head's bytes before this read were handed on already.
                            let earlier = self.head.len().saturating_sub(rest.len());
                            offset += length.saturating_sub(earlier);
                            self.head.clear();
                            self.framing = framing;
                        }
                    }
                }
                Framing::Body { remaining } => {
                    let available = u64::try_from(rest.len()).unwrap_or(u64::MAX);
                    let taken = available.min(remaining);
                    // `taken` ≤ `rest.len()`, so it fits a usize.
                    offset += usize::try_from(taken).unwrap_or(rest.len());
                    self.framing = if taken == remaining {
                        Framing::Head
                    } else {
                        Framing::Body {
                            remaining: remaining - taken,
                        }
                    };
                }
                Framing::Chunked(chunk) => match chunk {
                    Chunk::Data { remaining } => {
                        let available = u64::try_from(rest.len()).unwrap_or(u64::MAX);
                        let taken = available.min(remaining);
                        offset += usize::try_from(taken).unwrap_or(rest.len());
                        self.framing = Framing::Chunked(if taken == remaining {
                            Chunk::DataCr
                        } else {
                            Chunk::Data {
                                remaining: remaining - taken,
                            }
                        });
                    }
                    other => {
                        match self.chunk_byte(other, rest[0]) {
                            Some(framing) => self.framing = framing,
                            // Broken chunked framing: nothing after it is a request.
                            None => return Some((offset, None)),
                        }
                        offset += 1;
                    }
                },
            }
        }
        None
    }

    /// One byte of a chunk-size line, a chunk's closing CRLF or the trailer; `None` when it
    /// breaks the framing.
    fn chunk_byte(&self, chunk: Chunk, byte: u8) -> Option<Framing> {
        let next = match chunk {
            Chunk::Size {
                value,
                digits,
                extension,
            } => match byte {
                b'\r' if digits => Chunk::SizeLf { size: value },
                _ if extension => {
                    if byte == b'\n' {
                        return None;
                    }
                    chunk
                }
                b';' | b' ' | b'\t' if digits => Chunk::Size {
                    value,
                    digits,
                    extension: true,
                },
                _ => {
                    let digit = char::from(byte).to_digit(16)?;
                    let value = value.checked_mul(16)?.checked_add(u64::from(digit))?;
                    Chunk::Size {
                        value,
                        digits: true,
                        extension,
                    }
                }
            },
            Chunk::SizeLf { size } => match byte {
                b'\n' if size == 0 => Chunk::Trailer { line: 0, cr: false },
                b'\n' => Chunk::Data { remaining: size },
                _ => return None,
            },
            Chunk::DataCr => match byte {
                b'\r' => Chunk::DataLf,
                _ => return None,
            },
            Chunk::DataLf => match byte {
                b'\n' => Chunk::Size {
                    value: 0,
                    digits: false,
                    extension: false,
                },
                _ => return None,
            },
            Chunk::Trailer { line, cr } => match byte {
                b'\n' if cr && line == 0 => return Some(Framing::Head),
                b'\n' if cr => Chunk::Trailer { line: 0, cr: false },
                b'\r' if !cr => Chunk::Trailer { line, cr: true },
                _ if cr => return None,
                _ if line >= MAX_HEAD => return None,
                _ => Chunk::Trailer {
                    line: line + 1,
                    cr: false,
                },
            },
            Chunk::Data { .. } => chunk,
        };
        Some(Framing::Chunked(next))
    }
}

/// A client connection with its requests checked as they are read (see the module
/// documentation).
pub struct GuardedStream<T> {
    inner: T,
    reader: RequestReader,
    /// Once a head is refused: the response to write before the shutdown, and how much of it
    /// is written.
    refused: Option<(Vec<u8>, usize)>,
}

impl<T> GuardedStream<T> {
    pub fn new(inner: T) -> Self {
        GuardedStream {
            inner,
            reader: RequestReader::default(),
            refused: None,
        }
    }

    pub fn get_ref(&self) -> &T {
        &self.inner
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for GuardedStream<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.refused.is_some() {
            // The end of the stream, for actix-http.
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.inner).poll_read(context, buf))?;
        let this = &mut *self;
        if let Some((kept, refusal)) = this.reader.inspect(&buf.filled()[before..]) {
            buf.set_filled(before + kept);
            let response = match refusal {
                Some(refusal) => {
                    tracing::info!(
                        status = refusal.status.as_u16(),
                        message = %refusal.message,
                        "request refused before routing"
                    );
                    refusal.response_bytes()
                }
                None => Vec::new(),
            };
            this.refused = Some((response, 0));
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for GuardedStream<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(context, bytes)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffers: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(context, buffers)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(context)
    }

    /// Writes the refusal (after every response actix-http sent before it), then shuts down.
    fn poll_shutdown(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if let Some((response, written)) = &mut this.refused {
            while *written < response.len() {
                let count =
                    ready!(Pin::new(&mut this.inner).poll_write(context, &response[*written..]))?;
                if count == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                *written += count;
            }
            ready!(Pin::new(&mut this.inner).poll_flush(context))?;
        }
        Pin::new(&mut this.inner).poll_shutdown(context)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// A request with a Content-Length body, a chunked body or none.
    fn request(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut bytes = b"POST /api/tables/t/records?x=1 HTTP/1.1\r\nHost: h\r\n".to_vec();
        match kind % 3 {
            0 => {
                bytes.extend_from_slice(
                    format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes(),
                );
                bytes.extend_from_slice(body);
            }
            1 => {
                bytes.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
                for piece in body.chunks(7) {
                    bytes.extend_from_slice(format!("{:x};ext=1\r\n", piece.len()).as_bytes());
                    bytes.extend_from_slice(piece);
                    bytes.extend_from_slice(b"\r\n");
                }
                bytes.extend_from_slice(b"0\r\nTrailer: x\r\n\r\n");
            }
            _ => bytes.extend_from_slice(b"\r\n"),
        }
        bytes
    }

    /// Feeds `stream` to a reader in pieces cut at `cuts`; the bytes it would hand on and the
    /// refusal, if any.
    fn feed(stream: &[u8], cuts: &[usize]) -> (usize, Option<Option<Refusal>>) {
        let mut reader = RequestReader::default();
        let mut handed = 0;
        let mut start = 0;
        let mut points: Vec<usize> = cuts.iter().map(|cut| cut % (stream.len() + 1)).collect();
        points.push(stream.len());
        points.sort_unstable();
        for point in points {
            if point <= start {
                continue;
            }
            if let Some((kept, refusal)) = reader.inspect(&stream[start..point]) {
                return (handed + kept, Some(refusal));
            }
            handed += point - start;
            start = point;
        }
        (handed, None)
    }

    proptest! {
        #[test]
        fn valid_requests_in_any_pieces_pass_whole(
            requests in prop::collection::vec((any::<u8>(), prop::collection::vec(any::<u8>(), 0..40)), 1..5),
            cuts in prop::collection::vec(any::<usize>(), 0..8),
        ) {
            let stream: Vec<u8> = requests.iter().flat_map(|(kind, body)| request(*kind, body)).collect();
            let (handed, refusal) = feed(&stream, &cuts);
            prop_assert!(refusal.is_none());
            prop_assert_eq!(handed, stream.len());
        }

        #[test]
        fn a_bad_head_after_good_requests_is_cut_at_its_start(
            requests in prop::collection::vec((any::<u8>(), prop::collection::vec(any::<u8>(), 0..40)), 0..4),
            bad in 0usize..4,
            cuts in prop::collection::vec(any::<usize>(), 0..8),
        ) {
            let good: Vec<u8> = requests.iter().flat_map(|(kind, body)| request(*kind, body)).collect();
            let bad_head: Vec<u8> = match bad {
                0 => b"GARBAGE\r\n\r\n".to_vec(),
                1 => b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec(),
                2 => [b"GET / HTTP/1.1\r\n".to_vec(), (0..MAX_HEADERS + 1).flat_map(|i| format!("X-{i}: v\r\n").into_bytes()).collect(), b"\r\n".to_vec()].concat(),
                _ => [b"GET /".to_vec(), vec![b'a'; MAX_REQUEST_TARGET + 1], b" HTTP/1.1\r\n\r\n".to_vec()].concat(),
            };
            let stream = [good.clone(), bad_head].concat();
            let (handed, refusal) = feed(&stream, &cuts);
            let refusal = refusal.flatten();
            prop_assert!(refusal.is_some());
            // Every good request is handed on; the bad head never whole (only what reads before
            // the one that revealed it carried).
            prop_assert!(handed >= good.len(), "{} < {}", handed, good.len());
            prop_assert!(handed < stream.len());
        }
    }

    #[test]
    fn each_refusal_has_its_status() {
        let refuse = |bytes: &[u8]| {
            RequestReader::default()
                .inspect(bytes)
                .and_then(|(_, refusal)| refusal)
                .map(|refusal| refusal.status.as_u16())
        };
        assert_eq!(refuse(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"), None);
        assert_eq!(refuse(b"BAD LINE\r\n\r\n"), Some(400));
        assert_eq!(
            refuse(b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            Some(400)
        );
        assert_eq!(
            refuse(b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx"),
            None
        );
        assert_eq!(
            refuse(b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"),
            Some(400)
        );
        assert_eq!(
            refuse(b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n"),
            Some(400)
        );
        let long_line = [b"GET /".to_vec(), vec![b'a'; MAX_REQUEST_TARGET + 100]].concat();
        assert_eq!(
            refuse(&long_line),
            Some(414),
            "refused before the line ends"
        );
        let big_head = [
            b"GET / HTTP/1.1\r\nX-Big: ".to_vec(),
            vec![b'v'; MAX_HEAD + 1],
        ]
        .concat();
        assert_eq!(refuse(&big_head), Some(431));
        let response = String::from_utf8(
            Refusal::malformed("Malformed request head: invalid token").response_bytes(),
        )
        .expect("text");
        let (head, body) = response.split_once("\r\n\r\n").expect("a head and a body");
        assert!(head.starts_with("HTTP/1.1 400 Bad Request\r\n"));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let envelope: serde_json::Value = serde_json::from_str(body).expect("JSON");
        assert_eq!(envelope["success"], false);
        assert_eq!(envelope["code"], "VALIDATION_ERROR");
    }

    #[test]
    fn a_broken_chunked_body_ends_the_stream_without_a_reply() {
        let mut reader = RequestReader::default();
        let stream = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
        let (kept, refusal) = reader.inspect(stream).expect("cut");
        assert!(refusal.is_none());
        assert_eq!(kept, stream.len() - 4);
    }

    #[test]
    fn an_upgrade_is_not_inspected() {
        let mut reader = RequestReader::default();
        assert!(reader
            .inspect(b"GET / HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: x\r\n\r\n\x00\x01garbage")
            .is_none());
    }
}
