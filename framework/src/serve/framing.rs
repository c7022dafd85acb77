//! Refusing HTTP/1 requests whose body length is ambiguous: a head with both `Content-Length`
//! and `Transfer-Encoding` (RFC 9112 §6.3, the request-smuggling pattern).
//!
//! hyper already reads such a body as chunked and closes the connection after answering, as
//! the RFC requires; but it drops the `Content-Length` before the request reaches a service,
//! so the service cannot refuse it. So [`ObservedIo`] follows the framing of the bytes hyper
//! reads (heads, and body lengths to know where the next head starts) and notes the ordinal of
//! a head that carries both. hyper calls the service once per head, in order, so the service
//! answers that request `400` itself
//! ([`InFlight::is_refused`](super::connection::InFlight::is_refused)) and never runs the route;
//! hyper then closes the connection, and whatever was smuggled behind it is never read.
//!
//! The scanner gives up (stops following the connection, leaving it to hyper) wherever hyper
//! takes over or would refuse the bytes itself: HTTP/2, upgrades and `CONNECT`, a
//! `Transfer-Encoding` not ending in `chunked`, a malformed length. It finds line ends with
//! `memchr`, passes over most head lines on their first byte, reads a head that arrived whole in
//! one loop and skips bodies by count: 1,115 instructions a request on a mix of 400-byte browser
//! heads and JSON posts, 298 on a load generator's three-line head (callgrind on the
//! `typical_requests` and `load_generator_requests` unit tests; see docs/benchmarks.md).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::connection::ConnectionState;

pin_project_lite::pin_project! {
    /// A connection whose read side is followed by a [`FramingScanner`].
    pub(crate) struct ObservedIo<IO> {
        #[pin]
        inner: IO,
        scanner: FramingScanner,
        connection: Arc<ConnectionState>,
    }
}

impl<IO> ObservedIo<IO> {
    /// `inner`, followed when `refuse` is on (and passed through as it is otherwise).
    pub(crate) fn new(inner: IO, connection: Arc<ConnectionState>, refuse: bool) -> Self {
        let mut scanner = FramingScanner::default();
        if !refuse {
            scanner.state = State::GivenUp;
        }
        Self {
            inner,
            scanner,
            connection,
        }
    }
}

impl<IO: AsyncRead> AsyncRead for ObservedIo<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        if this.scanner.state == State::GivenUp {
            return this.inner.poll_read(cx, buf);
        }
        let before = buf.filled().len();
        let result = this.inner.poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = result {
            if let Some(ordinal) = this.scanner.scan(&buf.filled()[before..]) {
                this.connection.refuse_head(ordinal);
            }
        }
        result
    }
}

impl<IO: AsyncWrite> AsyncWrite for ObservedIo<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.project().inner.poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.project().inner.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}

/// The longest head-line start kept across reads: enough for the names that matter and a
/// `Content-Length` value.
const KEPT_LINE_BYTES: usize = 64;

/// Follows the framing of the HTTP/1 requests on one connection, byte by byte as they arrive
/// (I/O-free, so that it can be tested on any split of the stream).
#[derive(Debug, Default)]
pub(crate) struct FramingScanner {
    state: State,
    /// Heads completed so far.
    heads: u64,
    head: Head,
    /// The start of the current line, when it did not arrive in one read.
    partial: Vec<u8>,
    /// The length of that line so far (of which `partial` keeps the first bytes).
    partial_len: usize,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Head lines, or the empty lines allowed before a request line.
    #[default]
    Head,
    /// A body of known length: bytes left.
    Body(u64),
    /// A chunk-size line: the size so far, and whether the digits have ended (an extension).
    ChunkSize { size: u64, digits_done: bool },
    /// Chunk data: bytes left.
    ChunkData(u64),
    /// The line end after chunk data.
    ChunkDataEnd,
    /// Trailer lines after the last chunk, up to an empty line.
    Trailers,
    /// No longer followed: hyper's own handling applies.
    GivenUp,
}

/// What the head being read says about its body.
#[derive(Debug, Default)]
struct Head {
    request_line_seen: bool,
    content_length: Option<u64>,
    content_length_seen: bool,
    unreadable_length: bool,
    transfer_encoding: bool,
    chunked_last: bool,
    /// A protocol switch or a tunnel: what follows the head is not HTTP/1 for certain.
    switches: bool,
}

impl FramingScanner {
    /// Follows `bytes`, the next ones read; returns the ordinal of a head that gives its
    /// length twice (after which the scanner gives up: hyper closes the connection).
    pub(crate) fn scan(&mut self, mut bytes: &[u8]) -> Option<u64> {
        while !bytes.is_empty() {
            match self.state {
                State::GivenUp => return None,
                State::Body(left) => {
                    let skipped = skip(&mut bytes, left);
                    self.state = if skipped == left {
                        State::Head
                    } else {
                        State::Body(left - skipped)
                    };
                }
                State::ChunkData(left) => {
                    let skipped = skip(&mut bytes, left);
                    self.state = if skipped == left {
                        State::ChunkDataEnd
                    } else {
                        State::ChunkData(left - skipped)
                    };
                }
                State::ChunkDataEnd => match memchr::memchr(b'\n', bytes) {
                    Some(end) => {
                        bytes = &bytes[end + 1..];
                        self.state = State::ChunkSize {
                            size: 0,
                            digits_done: false,
                        };
                    }
                    None => bytes = &[],
                },
                State::ChunkSize { size, digits_done } => {
                    self.state = chunk_size(&mut bytes, size, digits_done);
                }
                State::Head | State::Trailers => {
                    if self.state == State::Head
                        && self.partial_len == 0
                        && !self.head.request_line_seen
                    {
                        if let Some((length, verdict)) = self.whole_head(bytes) {
                            bytes = &bytes[length..];
                            if verdict.is_some() {
                                return verdict;
                            }
                            continue;
                        }
                    }
                    let Some(end) = memchr::memchr(b'\n', bytes) else {
                        let room = KEPT_LINE_BYTES - self.partial.len();
                        self.partial
                            .extend_from_slice(&bytes[..bytes.len().min(room)]);
                        self.partial_len += bytes.len();
                        return None;
                    };
                    let (line, rest) = bytes.split_at(end);
                    bytes = &rest[1..];
                    let verdict = self.line(line);
                    if verdict.is_some() {
                        return verdict;
                    }
                }
            }
        }
        None
    }

    /// The head at the start of `bytes`, when all of it is there: its length, and what
    /// [`Self::end_of_head`] says of it. This is the common case (hyper reads a whole head
    /// unless the client trickles it), so it is one loop that looks at each line's first byte,
    /// without the bookkeeping of lines cut between reads: 298 instead of 408 instructions on
    /// a load generator's three-line head, 1,115 instead of 1,480 a request on the browser mix
    /// (docs/benchmarks.md).
    ///
    /// `None`, with nothing changed, when the head does not end in `bytes` or starts with what
    /// only the line-by-line path handles (an empty line, `PRI`, `CONNECT`).
    fn whole_head(&mut self, bytes: &[u8]) -> Option<(usize, Option<u64>)> {
        let mut line_start = 0;
        let mut request_line = true;
        while let Some(length) = memchr::memchr(b'\n', &bytes[line_start..]) {
            let end = line_start + length;
            let line = &bytes[line_start..end];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if request_line {
                if line.is_empty() || line.starts_with(b"PRI ") || line.starts_with(b"CONNECT ") {
                    break;
                }
                request_line = false;
            } else if line.is_empty() {
                return Some((end + 1, self.end_of_head()));
            } else if may_frame(line) {
                self.header(line, true);
            }
            line_start = end + 1;
        }
        self.head = Head::default();
        None
    }

    /// A complete line (without its `\n`), of which `tail` arrived in this read.
    fn line(&mut self, tail: &[u8]) -> Option<u64> {
        if self.partial_len == 0 {
            let content = tail.strip_suffix(b"\r").unwrap_or(tail);
            return self.content_line(content, true);
        }
        let length = self.partial_len + tail.len();
        let mut kept = std::mem::take(&mut self.partial);
        self.partial_len = 0;
        let room = KEPT_LINE_BYTES - kept.len();
        kept.extend_from_slice(&tail[..tail.len().min(room)]);
        let complete = kept.len() == length;
        let content = match complete {
            true => kept.strip_suffix(b"\r").unwrap_or(&kept),
            false => &kept,
        };
        let verdict = self.content_line(content, complete);
        // The buffer is kept for the next line that arrives in pieces.
        self.partial = kept;
        self.partial.clear();
        verdict
    }

    /// A line's content (`complete`: whole, or only its start was kept).
    fn content_line(&mut self, line: &[u8], complete: bool) -> Option<u64> {
        let is_empty = complete && line.is_empty();
        if self.state == State::Trailers {
            if is_empty {
                self.state = State::Head;
            }
            return None;
        }
        if !self.head.request_line_seen {
            if !is_empty {
                self.head.request_line_seen = true;
                if line.starts_with(b"PRI * HTTP/2") {
                    self.state = State::GivenUp;
                }
                self.head.switches = line.starts_with(b"CONNECT ");
            }
            return None;
        }
        if is_empty {
            return self.end_of_head();
        }
        if may_frame(line) {
            self.header(line, complete);
        }
        None
    }

    /// A line that may be `Content-Length`, `Transfer-Encoding` or `Upgrade`. Kept out of
    /// line, so that the loop over the lines that are passed over stays small.
    #[inline(never)]
    fn header(&mut self, line: &[u8], complete: bool) {
        if let Some(value) = field_value(line, b"content-length") {
            self.head.content_length_seen = true;
            let length = parse_length(trim(value)).filter(|_| complete);
            match (self.head.content_length, length) {
                (None, Some(length)) => self.head.content_length = Some(length),
                (Some(previous), Some(length)) if previous == length => {}
                // Unreadable, cut off here, or two that differ: hyper refuses the head.
                _ => self.head.unreadable_length = true,
            }
        } else if let Some(value) = field_value(line, b"transfer-encoding") {
            self.head.transfer_encoding = true;
            let last = value.rsplit(|&b| b == b',').next().map(trim);
            self.head.chunked_last =
                complete && last.is_some_and(|c| c.eq_ignore_ascii_case(b"chunked"));
        } else if field_value(line, b"upgrade").is_some() {
            self.head.switches = true;
        }
    }

    fn end_of_head(&mut self) -> Option<u64> {
        self.heads += 1;
        let head = std::mem::take(&mut self.head);
        if self.state == State::GivenUp {
            return None;
        }
        if head.content_length_seen && head.transfer_encoding {
            self.state = State::GivenUp;
            return Some(self.heads);
        }
        self.state = if head.switches
            || head.unreadable_length
            || (head.transfer_encoding && !head.chunked_last)
        {
            State::GivenUp
        } else if head.transfer_encoding {
            State::ChunkSize {
                size: 0,
                digits_done: false,
            }
        } else {
            match head.content_length {
                Some(length) if length > 0 => State::Body(length),
                _ => State::Head,
            }
        };
        None
    }
}

/// Whether a head line may be `Content-Length`, `Transfer-Encoding` or `Upgrade`. A field name
/// ends at its colon, with no space before it (RFC 9112 §5.1; hyper refuses the head
/// otherwise), so a name is recognized at the start of the line without looking for the colon
/// first: most lines are passed over on their first byte.
fn may_frame(line: &[u8]) -> bool {
    matches!(
        line.first().map(u8::to_ascii_lowercase),
        Some(b'c' | b't' | b'u')
    )
}

/// The value of a head line that is the field `name` (lowercase), whatever the name's case.
fn field_value<'a>(line: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    match line.get(name.len()) {
        Some(b':') if line[..name.len()].eq_ignore_ascii_case(name) => {
            Some(&line[name.len() + 1..])
        }
        _ => None,
    }
}

/// Consumes up to `count` bytes; returns how many.
fn skip(bytes: &mut &[u8], count: u64) -> u64 {
    let taken = usize::try_from(count).map_or(bytes.len(), |count| count.min(bytes.len()));
    *bytes = &bytes[taken..];
    taken as u64
}

/// Reads a chunk-size line: hex digits, then anything (an extension) up to the line end.
fn chunk_size(bytes: &mut &[u8], mut size: u64, mut digits_done: bool) -> State {
    while let Some((&byte, rest)) = bytes.split_first() {
        *bytes = rest;
        if byte == b'\n' {
            return match size {
                0 => State::Trailers,
                size => State::ChunkData(size),
            };
        }
        match (digits_done, char::from(byte).to_digit(16)) {
            (false, Some(digit)) => match size.checked_mul(16) {
                Some(shifted) => size = shifted + u64::from(digit),
                None => return State::GivenUp,
            },
            _ => digits_done = true,
        }
    }
    State::ChunkSize { size, digits_done }
}

/// A `Content-Length` value: digits, or a list of equal ones (`5, 5`), as hyper reads it.
fn parse_length(value: &[u8]) -> Option<u64> {
    let mut length = None;
    for part in value.split(|&b| b == b',') {
        let part = trim(part);
        if part.is_empty() {
            return None;
        }
        let mut parsed: u64 = 0;
        for &byte in part {
            if !byte.is_ascii_digit() {
                return None;
            }
            parsed = parsed
                .checked_mul(10)?
                .checked_add(u64::from(byte - b'0'))?;
        }
        match length {
            Some(previous) if previous != parsed => return None,
            _ => length = Some(parsed),
        }
    }
    length
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t'))
        .map_or(start, |end| end + 1);
    &bytes[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The refusals found in `stream`, fed in pieces of every size from 1 to 17 bytes (heads
    /// cut between reads), and of 64 and 4,096 (heads that arrive whole).
    fn refusals(stream: &[u8]) -> Vec<u64> {
        let mut seen = None;
        for piece in (1..=17).chain([64, 4096]) {
            let mut scanner = FramingScanner::default();
            let found: Vec<u64> = stream
                .chunks(piece)
                .filter_map(|bytes| scanner.scan(bytes))
                .collect();
            match &seen {
                None => seen = Some(found),
                Some(seen) => assert_eq!(&found, seen, "in pieces of {piece}"),
            }
        }
        seen.unwrap_or_default()
    }

    #[test]
    fn a_head_with_both_lengths_is_found_by_its_ordinal() {
        let stream = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n\
            POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n\
            0\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n";
        assert_eq!(refusals(stream), [2]);
        // Either order, any case, with whitespace.
        let stream =
            b"POST /x HTTP/1.1\r\ntransfer-encoding:  chunked \r\nCONTENT-LENGTH:3\r\n\r\n";
        assert_eq!(refusals(stream), [1]);
    }

    #[test]
    fn bodies_are_skipped_so_that_what_they_hold_is_not_taken_for_a_head() {
        let body =
            b"\r\n\r\nPOST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
        let mut stream =
            format!("POST /a HTTP/1.1\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
        stream.extend_from_slice(body);
        // A chunked body holding the same, in two chunks with an extension, and trailers.
        stream.extend_from_slice(b"POST /b HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
        stream.extend_from_slice(format!("{:x};name=value\r\n", 10).as_bytes());
        stream.extend_from_slice(&body[..10]);
        stream.extend_from_slice(format!("\r\n{:X}\r\n", body.len() - 10).as_bytes());
        stream.extend_from_slice(&body[10..]);
        stream.extend_from_slice(b"\r\n0\r\nTrailer: x\r\n\r\n");
        // Then the third request, which is the ambiguous one.
        stream.extend_from_slice(
            b"GET / HTTP/1.1\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n",
        );
        assert_eq!(refusals(&stream), [3]);
    }

    #[test]
    fn ordinary_streams_have_no_refusal() {
        let stream = b"\r\nGET / HTTP/1.1\nHost: a\n\nPUT /x HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\nhello\
            GET /y HTTP/1.1\r\nX-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
        assert_eq!(refusals(stream), Vec::<u64>::new());
    }

    #[test]
    fn it_gives_up_where_hyper_takes_over() {
        for stream in [
            // HTTP/2 with prior knowledge.
            &b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
            // A protocol switch: what follows is not HTTP/1.
            b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\nGET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            // Lengths hyper refuses itself.
            b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nGET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\nGET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            assert_eq!(refusals(stream), Vec::<u64>::new(), "{}", String::from_utf8_lossy(stream));
        }
    }

    /// The other workload of docs/benchmarks.md: the three-line head a load generator sends,
    /// one per read, as hyper reads a connection that waits for each response.
    #[test]
    fn load_generator_requests() {
        let head = b"GET /api/hello HTTP/1.1\r\nHost: 127.0.0.1:3000\r\n\r\n";
        let mut scanner = FramingScanner::default();
        for _ in 0..10_000 {
            assert_eq!(scanner.scan(head), None);
        }
        assert_eq!((scanner.heads, scanner.state), (10_000, State::Head));
    }

    /// A browser's `GET` head (about 400 bytes), and a JSON `POST` with its body.
    fn typical_stream(count: usize) -> Vec<u8> {
        let get = "GET /api/v1/posts?limit=10 HTTP/1.1\r\nHost: api.example.com\r\n\
            User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
            Accept: application/json\r\nAccept-Language: en-US,en;q=0.5\r\n\
            Accept-Encoding: gzip, deflate, br, zstd\r\nConnection: keep-alive\r\n\
            Cookie: session=0123456789abcdef0123456789abcdef\r\n\
            Sec-Fetch-Dest: empty\r\nSec-Fetch-Mode: cors\r\nSec-Fetch-Site: same-origin\r\n\r\n";
        let post = "POST /api/v1/posts HTTP/1.1\r\nHost: api.example.com\r\n\
            Content-Type: application/json\r\nContent-Length: 39\r\n\r\n\
            {\"title\":\"Hello\",\"body\":\"A first post\"}";
        let mut stream = Vec::new();
        for index in 0..count {
            stream.extend_from_slice(if index % 4 == 3 { post } else { get }.as_bytes());
        }
        stream
    }

    /// Also the workload that measures the scanner's cost (docs/benchmarks.md):
    /// `valgrind --tool=callgrind --toggle-collect='*FramingScanner*scan*'` on the release
    /// test binary, `-- typical_requests --exact`, divided by 10,000 requests.
    #[test]
    fn typical_requests() {
        let stream = typical_stream(10_000);
        let mut scanner = FramingScanner::default();
        // In reads of 16 KiB, as hyper reads a busy keep-alive connection.
        for bytes in stream.chunks(16 * 1024) {
            assert_eq!(scanner.scan(bytes), None);
        }
        assert_eq!((scanner.heads, scanner.state), (10_000, State::Head));
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        /// One request: its head, with a body framed by length or chunks (whose bytes may
        /// look like anything, heads included); `ambiguous` gives it both lengths.
        fn request(
            body: Vec<u8>,
            chunks: Option<Vec<usize>>,
            ambiguous: bool,
            lowercase: bool,
        ) -> Vec<u8> {
            let mut head = String::from("POST /x HTTP/1.1\r\nHost: a\r\n");
            let (length, encoding) = match lowercase {
                true => ("content-length", "transfer-encoding"),
                false => ("Content-Length", "Transfer-Encoding"),
            };
            match &chunks {
                None => head.push_str(&format!("{length}: {}\r\n", body.len())),
                Some(_) => {
                    head.push_str(&format!("{encoding}: chunked\r\n"));
                    if ambiguous {
                        head.push_str(&format!("{length}: {}\r\n", body.len()));
                    }
                }
            }
            if ambiguous && chunks.is_none() {
                head.push_str(&format!("{encoding}: chunked\r\n"));
            }
            head.push_str("\r\n");
            let mut bytes = head.into_bytes();
            match chunks {
                None if !ambiguous => bytes.extend_from_slice(&body),
                // Both lengths: what follows is never read by the scanner (nor by hyper,
                // which closes the connection), so it does not matter.
                None => {}
                Some(cuts) => {
                    let mut rest = &body[..];
                    for cut in cuts {
                        let (chunk, after) = rest.split_at(cut.min(rest.len()));
                        if !chunk.is_empty() {
                            bytes.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                            bytes.extend_from_slice(chunk);
                            bytes.extend_from_slice(b"\r\n");
                        }
                        rest = after;
                    }
                    if !rest.is_empty() {
                        bytes.extend_from_slice(format!("{:X};ext=1\r\n", rest.len()).as_bytes());
                        bytes.extend_from_slice(rest);
                        bytes.extend_from_slice(b"\r\n");
                    }
                    bytes.extend_from_slice(b"0\r\n\r\n");
                }
            }
            bytes
        }

        /// Bodies that often hold what the scanner looks for.
        fn body() -> impl Strategy<Value = Vec<u8>> {
            let piece = prop_oneof![
                Just(b"\r\n".to_vec()),
                Just(b"\n\n".to_vec()),
                Just(b"Content-Length: 3\r\n".to_vec()),
                Just(b"Transfer-Encoding: chunked\r\n".to_vec()),
                Just(b"0\r\n\r\n".to_vec()),
                Just(b"POST / HTTP/1.1\r\n".to_vec()),
                prop::collection::vec(any::<u8>(), 0..40),
            ];
            prop::collection::vec(piece, 0..8).prop_map(|pieces| pieces.concat())
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn the_ambiguous_request_is_found_wherever_it_is_and_however_the_bytes_arrive(
                requests in prop::collection::vec(
                    (body(), prop::option::of(prop::collection::vec(0usize..30, 0..4)), any::<bool>()),
                    1..6,
                ),
                ambiguous_at in prop::option::of(any::<prop::sample::Index>()),
                reads in prop::collection::vec(prop_oneof![1usize..64, 64usize..1024], 1..40),
            ) {
                let ambiguous = ambiguous_at.map(|at| at.index(requests.len()));
                let mut stream = Vec::new();
                for (index, (body, chunks, lowercase)) in requests.into_iter().enumerate() {
                    stream.extend(request(body, chunks, ambiguous == Some(index), lowercase));
                    if ambiguous == Some(index) {
                        break;
                    }
                }
                let mut scanner = FramingScanner::default();
                let mut found = Vec::new();
                let mut rest = &stream[..];
                for read in reads.iter().cycle() {
                    if rest.is_empty() {
                        break;
                    }
                    let (bytes, after) = rest.split_at((*read).min(rest.len()));
                    found.extend(scanner.scan(bytes));
                    rest = after;
                }
                let expected: Vec<u64> = ambiguous.map(|at| at as u64 + 1).into_iter().collect();
                prop_assert_eq!(found, expected);
                if ambiguous.is_none() {
                    // Every request was followed to its end: the next bytes are a head.
                    prop_assert_eq!(scanner.state, State::Head);
                }
            }
        }
    }
}
