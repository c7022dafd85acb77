//! Server-Sent Events frames: an event is one frame whatever its name and data (no data can
//! start a second event), and a comment stays on one line. Fields: event name, data.
#![no_main]

use arbor::sse::SseEvent;
use arbor_fuzz::fields;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [name, text] = fields(data, 2)[..] else {
        unreachable!()
    };
    let (name, text) = (String::from_utf8_lossy(name), String::from_utf8_lossy(text));
    match SseEvent::json(&name, &text) {
        Err(_) => assert!(name.is_empty() || name.contains(['\n', '\r'])),
        Ok(event) => {
            let frame = std::str::from_utf8(event.as_bytes()).unwrap();
            assert!(frame.ends_with("\n\n"));
            assert_eq!(frame.matches("\n\n").count(), 1, "{frame:?}");
            assert!(!frame.contains('\r'));
            let lines: Vec<&str> = frame.trim_end().lines().collect();
            assert_eq!(lines.len(), 2, "{frame:?}");
            assert_eq!(lines[0].strip_prefix("event: "), Some(&*name));
            let sent: String =
                serde_json::from_str(lines[1].strip_prefix("data: ").unwrap()).unwrap();
            assert_eq!(sent, text);
        }
    }
    let comment = SseEvent::comment(&text);
    let frame = std::str::from_utf8(comment.as_bytes()).unwrap();
    assert!(
        frame.starts_with(": ") && frame.ends_with("\n\n"),
        "{frame:?}"
    );
    assert_eq!(frame.matches('\n').count(), 2, "{frame:?}");
    assert!(!frame.contains('\r'));
});
