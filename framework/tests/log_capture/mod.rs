//! Captures the test binary's logs in the production JSON format, for tests that check what a
//! request logged.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::Value;

#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn logs() -> &'static Logs {
    static LOGS: OnceLock<Logs> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Logs::default();
        let writer = logs.clone();
        // The production format (`logging::init(Format::Json)`).
        tracing_subscriber::fmt()
            .fmt_fields(arbor::logging::JsonLines)
            .event_format(arbor::logging::JsonLines)
            .with_writer(move || writer.clone())
            .init();
        logs
    })
}

/// Installs the one subscriber of this test binary (once); call before the first request.
pub(crate) fn capture() {
    logs();
}

/// Every captured line that mentions `request_id` (tests tell their requests apart by id).
pub(crate) fn log_lines_for(request_id: &str) -> Vec<Value> {
    let bytes = logs().0.lock().unwrap().clone();
    String::from_utf8(bytes)
        .unwrap()
        .lines()
        .filter(|line| line.contains(request_id))
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}
