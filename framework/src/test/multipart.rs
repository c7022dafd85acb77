//! `multipart/form-data` bodies for [`TestRequest::multipart`](super::TestRequest::multipart).

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{BufMut, Bytes, BytesMut};

/// A `multipart/form-data` body: text fields and files, in order.
///
/// ```
/// use arbor::test::Multipart;
///
/// let form = Multipart::new()
///     .text("title", "Quarterly numbers")
///     .file("file", "numbers.csv", "text/csv", "q,amount\n1,100\n");
/// assert!(form.content_type().starts_with("multipart/form-data; boundary="));
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct Multipart {
    boundary: String,
    body: BytesMut,
}

impl Default for Multipart {
    fn default() -> Self {
        Self::new()
    }
}

impl Multipart {
    /// An empty form with a boundary of its own.
    pub fn new() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        Self {
            boundary: format!(
                "arbor-test-boundary-{:016x}",
                NEXT.fetch_add(1, Ordering::Relaxed) ^ 0x005e_ed0f_a7b0_7e57
            ),
            body: BytesMut::new(),
        }
    }

    /// Adds a text field.
    pub fn text(self, name: &str, value: &str) -> Self {
        self.part(
            &format!("form-data; name=\"{name}\""),
            None,
            value.as_bytes(),
        )
    }

    /// Adds a file field.
    pub fn file(
        self,
        name: &str,
        filename: &str,
        content_type: &str,
        contents: impl AsRef<[u8]>,
    ) -> Self {
        self.part(
            &format!("form-data; name=\"{name}\"; filename=\"{filename}\""),
            Some(content_type),
            contents.as_ref(),
        )
    }

    /// The `Content-Type` header value, with the boundary.
    pub fn content_type(&self) -> String {
        format!("multipart/form-data; boundary={}", self.boundary)
    }

    /// The body, with its closing boundary.
    pub fn into_body(mut self) -> Bytes {
        self.body
            .put_slice(format!("--{}--\r\n", self.boundary).as_bytes());
        self.body.freeze()
    }

    fn part(mut self, disposition: &str, content_type: Option<&str>, contents: &[u8]) -> Self {
        self.body.put_slice(
            format!(
                "--{}\r\nContent-Disposition: {disposition}\r\n",
                self.boundary
            )
            .as_bytes(),
        );
        if let Some(content_type) = content_type {
            self.body
                .put_slice(format!("Content-Type: {content_type}\r\n").as_bytes());
        }
        self.body.put_slice(b"\r\n");
        self.body.put_slice(contents);
        self.body.put_slice(b"\r\n");
        self
    }
}
