//! [`JsonLines`]: the JSON log format, written in one pass per event.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// One JSON object per line: `{"timestamp", "level", "target", "message", fields…, "span":
/// {"name", fields…}}` with the request's span (and so its `request_id`) on every line.
///
/// tracing-subscriber's own JSON format stores each span's fields as a JSON document and parses
/// it back for every event; this one stores them as ready-to-write JSON members, so an event
/// costs one pass of writing. [`init`](super::init) installs it for
/// [`Format::Json`](super::Format::Json); install it yourself with
/// `tracing_subscriber::fmt().fmt_fields(JsonLines).event_format(JsonLines)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonLines;

impl<'writer> FormatFields<'writer> for JsonLines {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        // Built in a scratch buffer and handed over in one write: the span's own `String`
        // then gets a single allocation of the right size instead of growing step by step.
        with_scratch(|out| {
            fields.record(&mut JsonMembers::new(out));
            writer.write_str(out)
        })
    }

    fn add_fields(
        &self,
        current: &'writer mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        let first = current.fields.is_empty();
        let mut visitor = JsonMembers::new(&mut current.fields);
        visitor.first = first;
        fields.record(&mut visitor);
        Ok(())
    }
}

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> fmt::Result {
        // The line is built in a concrete `String` (small writes inline) and handed to the
        // type-erased writer once.
        with_scratch(|out| {
            let metadata = event.metadata();
            out.push_str("{\"timestamp\":\"");
            write_timestamp(out, SystemTime::now());
            out.push_str("\",\"level\":\"");
            out.push_str(metadata.level().as_str());
            out.push_str("\",\"target\":");
            write_json_str(out, metadata.target());
            let mut visitor = JsonMembers::new(out);
            visitor.first = false;
            event.record(&mut visitor);
            if let Some(span) = ctx.lookup_current() {
                out.push_str(",\"span\":{\"name\":");
                write_json_str(out, span.name());
                let extensions = span.extensions();
                if let Some(fields) = extensions.get::<FormattedFields<JsonLines>>() {
                    if !fields.fields.is_empty() {
                        out.push(',');
                        out.push_str(&fields.fields);
                    }
                }
                out.push('}');
            }
            out.push_str("}\n");
            writer.write_str(out)
        })
    }
}

thread_local! {
    static SCRATCH: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Runs `write` with this thread's cleared scratch buffer, or a fresh one if a field's
/// `Debug` logs while it is being formatted.
fn with_scratch<T>(write: impl FnOnce(&mut String) -> T) -> T {
    SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
        Ok(mut scratch) => {
            scratch.clear();
            write(&mut scratch)
        }
        Err(_) => write(&mut String::new()),
    })
}

/// Writes fields as JSON object members (`"name":value`, comma-separated, no braces).
struct JsonMembers<'a> {
    out: &'a mut String,
    first: bool,
}

impl<'a> JsonMembers<'a> {
    fn new(out: &'a mut String) -> Self {
        Self { out, first: true }
    }

    /// Starts a member; the caller writes its value. Field names are Rust identifiers:
    /// nothing in them needs escaping.
    fn name(&mut self, field: &Field) -> &mut String {
        // Single characters are pushed, not copied: a `memcpy` call per punctuation mark was a
        // third of the cost of writing a member.
        if !std::mem::take(&mut self.first) {
            self.out.push(',');
        }
        self.out.push('"');
        self.out.push_str(field.name());
        self.out.push('"');
        self.out.push(':');
        self.out
    }
}

impl Visit for JsonMembers<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        write_json_str(self.name(field), value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let out = self.name(field);
        out.push('"');
        // Escaped as it is formatted: no intermediate `String`. Writing to a `String` cannot
        // fail; a `Debug` impl that reports an error leaves what it wrote so far.
        let _ = write!(JsonEscape(out), "{value:?}");
        out.push('"');
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.name(field).push_str(itoa::Buffer::new().format(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.name(field).push_str(itoa::Buffer::new().format(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        let mut buffer = ryu::Buffer::new();
        let text = if value.is_finite() {
            buffer.format_finite(value)
        } else {
            "null"
        };
        self.name(field).push_str(text);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.name(field)
            .push_str(if value { "true" } else { "false" });
    }
}

/// A JSON string literal, escaped per RFC 8259.
pub(super) fn write_json_str(out: &mut String, value: &str) {
    out.push('"');
    write_escaped(out, value);
    out.push('"');
}

/// Escapes what is written through it as the inside of a JSON string.
struct JsonEscape<'a>(&'a mut String);

impl fmt::Write for JsonEscape<'_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        write_escaped(self.0, text);
        Ok(())
    }
}

fn write_escaped(out: &mut String, value: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let needs_escape = |byte: &u8| *byte < 0x20 || *byte == b'"' || *byte == b'\\';
    let bytes = value.as_bytes();
    // The common case, checked eight bytes at a time: nothing to escape.
    let Some(first) = first_to_escape(bytes) else {
        out.push_str(value);
        return;
    };
    out.push_str(&value[..first]);
    let mut clean_from = first;
    // Every byte that needs escaping is ASCII, so each index found here is a char boundary and
    // runs of clean text (including multi-byte UTF-8) are copied whole.
    for (index, &byte) in bytes.iter().enumerate().skip(first) {
        if !needs_escape(&byte) {
            continue;
        }
        out.push_str(&value[clean_from..index]);
        match byte {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            _ => {
                out.push_str("\\u00");
                out.push(char::from(HEX[usize::from(byte >> 4)]));
                out.push(char::from(HEX[usize::from(byte & 0xf)]));
            }
        }
        clean_from = index + 1;
    }
    out.push_str(&value[clean_from..]);
}

/// The index of the first byte that JSON needs escaped (`"`, `\\`, a control character).
///
/// Eight bytes at a time, with the bit tricks of "Bit Twiddling Hacks" (`haszero`, `hasless`):
/// every request's log lines escape a dozen strings, and a byte-by-byte scan was a sixth of the
/// cost of formatting them. Each mask has its lowest set bit at the first matching byte exactly
/// (a false match can only follow a true one, through a borrow), so the lowest bit of their union
/// is the answer.
fn first_to_escape(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    let zero_byte = |word: u64| word.wrapping_sub(ONES) & !word & HIGHS;
    let mut chunks = bytes.chunks_exact(8);
    let mut offset = 0;
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
        let found = (word.wrapping_sub(ONES * 0x20) & !word & HIGHS)
            | zero_byte(word ^ (ONES * u64::from(b'"')))
            | zero_byte(word ^ (ONES * u64::from(b'\\')));
        if found != 0 {
            return Some(offset + found.trailing_zeros() as usize / 8);
        }
        offset += 8;
    }
    let tail = chunks.remainder();
    tail.iter()
        .position(|&byte| byte < 0x20 || byte == b'"' || byte == b'\\')
        .map(|index| offset + index)
}

thread_local! {
    /// The last second formatted on this thread, as `YYYY-MM-DDTHH:MM:SS`: consecutive events
    /// usually fall in the same second, and the calendar arithmetic is then skipped.
    static FORMATTED_SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

/// RFC 3339 in UTC with microseconds, `2026-11-25T09:30:00.123456Z`, as tracing-subscriber's
/// `SystemTime` timer writes it.
fn write_timestamp(out: &mut String, now: SystemTime) {
    let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since_epoch.as_secs();
    FORMATTED_SECOND.with_borrow_mut(|(second, text)| {
        if *second != seconds {
            *second = seconds;
            text.clear();
            // Digits and punctuation only: always UTF-8.
            text.push_str(std::str::from_utf8(&format_second(seconds)).unwrap_or_default());
        }
        out.push_str(text);
    });
    out.push('.');
    let micros = since_epoch.subsec_micros();
    for divisor in [100_000, 10_000, 1_000, 100, 10, 1] {
        out.push(char::from(b'0' + (micros / divisor % 10) as u8));
    }
    out.push('Z');
}

/// `YYYY-MM-DDTHH:MM:SS` for a count of seconds since the Unix epoch (years 1970 to 9999).
fn format_second(seconds: u64) -> [u8; 19] {
    let days = seconds / 86_400;
    let of_day = seconds % 86_400;
    let (year, month, day) = civil_from_days(days);
    let mut text = *b"0000-00-00T00:00:00";
    let mut put = |at: usize, width: usize, mut value: u64| {
        for digit in text[at..at + width].iter_mut().rev() {
            *digit = b'0' + u8::try_from(value % 10).unwrap_or(0);
            value /= 10;
        }
    };
    put(0, 4, year);
    put(5, 2, month);
    put(8, 2, day);
    put(11, 2, of_day / 3600);
    put(14, 2, of_day % 3600 / 60);
    put(17, 2, of_day % 60);
    text
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, for days on or after the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let shifted = days + 719_468;
    let era = shifted / 146_097;
    let day_of_era = shifted % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    #[test]
    fn json_lines_are_valid_json_with_the_span_on_every_line() {
        let buffer = Arc::new(Mutex::new(Vec::<u8>::new()));
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .fmt_fields(JsonLines)
            .event_format(JsonLines)
            .with_writer(move || WriterHandle(writer.clone()))
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!(
                "request",
                request_id = "r-1",
                path = %"/a\"b",
                attempt = tracing::field::Empty,
                retried = tracing::field::Empty,
            );
            let _entered = span.enter();
            span.record("attempt", 2_u64);
            span.record("retried", true);
            tracing::info!(
                status = 200_u16,
                delta = -3_i64,
                ok = true,
                ratio = 0.5,
                nan = f64::NAN,
                debug = ?Some("x\ty"),
                "done \"quoted\"\nline\u{1}é"
            );
        });
        let text = String::from_utf8(buffer.lock().unwrap().clone()).unwrap();
        let line: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["message"], "done \"quoted\"\nline\u{1}é");
        assert_eq!(line["status"], 200);
        assert_eq!(line["delta"], -3);
        assert_eq!(line["ok"], true);
        assert_eq!(line["ratio"], 0.5);
        assert_eq!(line["nan"], serde_json::Value::Null);
        assert_eq!(line["debug"], "Some(\"x\\ty\")");
        assert_eq!(
            line["span"],
            serde_json::json!({
                "name": "request", "request_id": "r-1", "path": "/a\"b",
                "attempt": 2, "retried": true,
            })
        );
        assert!(
            line["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{line}"
        );
    }

    #[test]
    fn escapes_every_control_character() {
        let all: String = (0u8..0x80).map(char::from).chain(['é', '😀']).collect();
        let mut written = String::new();
        write_json_str(&mut written, &all);
        let parsed: String = serde_json::from_str(&written).unwrap();
        assert_eq!(parsed, all);
        assert!(written.contains("\\u001f") && !written.contains('\u{1}'));
    }

    #[test]
    fn the_word_scan_finds_the_first_byte_to_escape() {
        let reference = |bytes: &[u8]| {
            bytes
                .iter()
                .position(|&b| b < 0x20 || b == b'"' || b == b'\\')
        };
        // Clean bytes next to the special ones in value (and UTF-8's high bytes), so that a
        // borrow or a carry between bytes would show.
        let clean = [
            b' ', b'!', b'#', b'[', b']', b'a', 0x7f, 0x80, 0xa2, 0xdc, 0xff,
        ];
        let special: Vec<u8> = (0..0x20).chain([b'"', b'\\']).collect();
        for length in 0..=20 {
            for &fill in &clean {
                let mut bytes = vec![fill; length];
                assert_eq!(first_to_escape(&bytes), None, "{bytes:?}");
                for first in 0..length {
                    for &byte in &special {
                        bytes[first] = byte;
                        // A second special byte later must not move the answer.
                        if first + 1 < length {
                            bytes[length - 1] = b'"';
                        }
                        assert_eq!(first_to_escape(&bytes), reference(&bytes), "{bytes:?}");
                        assert_eq!(first_to_escape(&bytes), Some(first), "{bytes:?}");
                        bytes.fill(fill);
                    }
                }
            }
        }
    }

    #[test]
    fn timestamps_are_rfc_3339_utc_with_microseconds() {
        let cases = [
            (0, 0, "1970-01-01T00:00:00.000000Z"),
            (951_782_400, 5, "2000-02-29T00:00:00.000005Z"),
            (1_709_164_800, 42, "2024-02-29T00:00:00.000042Z"),
            (1_795_000_000, 123_456, "2026-11-18T11:06:40.123456Z"),
            (4_102_444_799, 999_999, "2099-12-31T23:59:59.999999Z"),
        ];
        for (seconds, micros, expected) in cases {
            let at = UNIX_EPOCH + Duration::new(seconds, micros * 1000);
            // Twice: the second call takes the cached second.
            for _ in 0..2 {
                let mut written = String::new();
                write_timestamp(&mut written, at);
                assert_eq!(written, expected);
            }
        }
    }

    struct WriterHandle(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for WriterHandle {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
}
