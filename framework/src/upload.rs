//! File uploads streamed to storage: a `multipart/form-data` field is written chunk by chunk,
//! never held in memory whole, under a size limit and a list of allowed types.
//!
//! Two steps, so that every refusal that can be known early is a real status code:
//!
//! 1. [`Upload::accept`] reads the body up to the file's part headers: `400` if it isn't
//!    multipart or has no file, `413` if its `Content-Length` already exceeds the maximum,
//!    `415` if the file's type isn't allowed.
//! 2. [`Upload::save`] streams the file into a [`Storage`], with progress callbacks; past the
//!    maximum it stops with `413` and nothing is kept.
//!
//! ```
//! use arbor::upload::{LocalStorage, Upload, UploadLimits};
//! use arbor::{ApiError, Extension, Request, Response};
//!
//! const LIMITS: fn() -> UploadLimits =
//!     || UploadLimits::new().max_size(20 * 1024 * 1024).allow(["image/*", "application/pdf"]);
//!
//! // Plain JSON answer once stored:
//! pub async fn POST(
//!     Extension(storage): Extension<LocalStorage>,
//!     request: Request,
//! ) -> Result<axum::Json<arbor::upload::StoredFile>, ApiError> {
//!     let upload = Upload::accept(request, &LIMITS()).await?;
//!     Ok(axum::Json(upload.save(&storage, |_| {}).await?))
//! }
//!
//! // Or progress events while it uploads, then `complete` with the file:
//! pub async fn PUT(
//!     Extension(storage): Extension<LocalStorage>,
//!     request: Request,
//! ) -> Result<Response, ApiError> {
//!     let upload = Upload::accept(request, &LIMITS()).await?;
//!     Ok(arbor::progress::stream(move |progress| async move {
//!         upload
//!             .save(&storage, |p| {
//!                 if let Some(percent) = p.percent {
//!                     progress.try_processing(percent);
//!                 }
//!             })
//!             .await
//!     }))
//! }
//! ```
//!
//! The client's file name is never used as a path: [`LocalStorage`] names files with random
//! ids and keeps the original name as metadata. [`serve_file`] streams a stored file back.
//!
//! The size limit is the helper's own: the route's body limit ([`crate::body_limit`]) only
//! applies to the buffering extractors (`Json`, `Form`, ...), not to this streaming one.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use bytes::Bytes;
use futures_util::stream::{self, BoxStream, StreamExt, TryStreamExt};
use http::{header, HeaderValue, StatusCode};
use multer::{Field, Multipart};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use crate::store::{BoxFuture, StoreError};
use crate::ApiError;

/// A stream of file bytes.
pub type ByteStream<'a> = BoxStream<'a, io::Result<Bytes>>;

/// What to accept: maximum size, allowed types, field name.
#[derive(Debug, Clone)]
#[must_use]
pub struct UploadLimits {
    max_size: u64,
    allowed: Vec<String>,
    field: String,
    max_text: usize,
}

impl Default for UploadLimits {
    fn default() -> Self {
        Self {
            max_size: 10 * 1024 * 1024,
            allowed: Vec::new(),
            field: "file".into(),
            max_text: 64 * 1024,
        }
    }
}

impl UploadLimits {
    /// The defaults: 10 MiB, any type, field `file`, 64 KiB of other text fields.
    pub fn new() -> Self {
        Self::default()
    }

    /// The largest file accepted, in bytes.
    pub fn max_size(mut self, bytes: u64) -> Self {
        self.max_size = bytes;
        self
    }

    /// The allowed media types: exact (`image/png`) or a whole type (`image/*`). Without a
    /// list, any type is accepted.
    pub fn allow<I, S>(mut self, types: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.allowed = types
            .into_iter()
            .map(|t| t.as_ref().trim().to_ascii_lowercase())
            .collect();
        self
    }

    /// The name of the file field (default `file`).
    pub fn field(mut self, name: impl Into<String>) -> Self {
        self.field = name.into();
        self
    }

    /// The most bytes of text fields read before the file (default 64 KiB).
    pub fn max_text_fields(mut self, bytes: usize) -> Self {
        self.max_text = bytes;
        self
    }

    fn allows(&self, essence: &str) -> bool {
        self.allowed.is_empty()
            || self.allowed.iter().any(|allowed| {
                allowed == essence
                    || allowed == "*/*"
                    || allowed.strip_suffix("/*").is_some_and(|kind| {
                        essence
                            .split_once('/')
                            .is_some_and(|(essence_kind, _)| essence_kind == kind)
                    })
            })
    }
}

/// Progress of [`Upload::save`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct UploadProgress {
    /// File bytes stored so far.
    pub bytes: u64,
    /// The request's `Content-Length`, if it sent one.
    pub total: Option<u64>,
    /// Percentage of the request body received (99 at most until the file is stored, then
    /// 100); `None` without a `Content-Length`.
    pub percent: Option<u8>,
}

/// A stored file's metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredFile {
    /// The storage id: random, safe in a URL and a path.
    pub id: String,
    /// The name the client gave, cleaned of any path (metadata only).
    pub file_name: Option<String>,
    /// The media type the client declared (checked against the allowed list).
    pub content_type: String,
    /// Size in bytes.
    pub size: u64,
    /// Seconds since the Unix epoch.
    pub created_at: u64,
}

/// A file about to be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFile {
    /// The cleaned client file name.
    pub file_name: Option<String>,
    /// The media type.
    pub content_type: String,
}

/// Where uploads go. Implementations must write incrementally, keep nothing when `data`
/// yields an error (or the future is dropped), and validate ids before using them.
pub trait Storage: Send + Sync + fmt::Debug + 'static {
    /// Stores `data` under a new id.
    fn put<'a>(
        &'a self,
        file: NewFile,
        data: ByteStream<'a>,
    ) -> BoxFuture<'a, Result<StoredFile, StoreError>>;

    /// The metadata and content of file `id`, or `None`.
    fn get<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<(StoredFile, ByteStream<'static>)>, StoreError>>;

    /// Deletes file `id`; `false` if there was none.
    fn delete<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<bool, StoreError>>;
}

impl<S: Storage + ?Sized> Storage for Arc<S> {
    fn put<'a>(
        &'a self,
        file: NewFile,
        data: ByteStream<'a>,
    ) -> BoxFuture<'a, Result<StoredFile, StoreError>> {
        (**self).put(file, data)
    }

    fn get<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<(StoredFile, ByteStream<'static>)>, StoreError>> {
        (**self).get(id)
    }

    fn delete<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        (**self).delete(id)
    }
}

/// Files in a local directory: `{dir}/{id}` for the content, `{dir}/{id}.json` for the
/// metadata. Ids are 32 lowercase hex digits; anything else is never looked up. A file being
/// written is `{dir}/.{id}.part` and is removed if the upload fails or is abandoned.
#[derive(Debug, Clone)]
pub struct LocalStorage {
    dir: Arc<PathBuf>,
}

impl LocalStorage {
    /// Storage in `dir` (created on first upload).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: Arc::new(dir.into()),
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn paths(&self, id: &str) -> Option<(PathBuf, PathBuf)> {
        valid_id(id).then(|| (self.dir.join(id), self.dir.join(format!("{id}.json"))))
    }

    async fn put_file(&self, file: NewFile, mut data: ByteStream<'_>) -> io::Result<StoredFile> {
        tokio::fs::create_dir_all(&*self.dir).await?;
        let id = uuid::Uuid::new_v4().simple().to_string();
        let part = RemoveOnDrop(Some(self.dir.join(format!(".{id}.part"))));
        let mut out = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(part.path())
            .await?;
        let mut size = 0u64;
        while let Some(chunk) = data.next().await {
            let chunk = chunk?;
            size += chunk.len() as u64;
            out.write_all(&chunk).await?;
        }
        out.flush().await?;
        drop(out);
        let stored = StoredFile {
            id: id.clone(),
            file_name: file.file_name,
            content_type: file.content_type,
            size,
            created_at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        };
        let (path, meta_path) = (self.dir.join(&id), self.dir.join(format!("{id}.json")));
        let meta = RemoveOnDrop(Some(meta_path));
        tokio::fs::write(meta.path(), serde_json::to_vec(&stored)?).await?;
        tokio::fs::rename(part.path(), &path).await?;
        part.keep();
        meta.keep();
        Ok(stored)
    }

    async fn get_file(&self, id: &str) -> io::Result<Option<(StoredFile, ByteStream<'static>)>> {
        let Some((path, meta_path)) = self.paths(id) else {
            return Ok(None);
        };
        let meta = match tokio::fs::read(&meta_path).await {
            Ok(meta) => meta,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(error),
        };
        let stored: StoredFile = serde_json::from_slice(&meta)?;
        let file = match tokio::fs::File::open(&path).await {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(error),
        };
        let stream = tokio_util::io::ReaderStream::with_capacity(file, 64 * 1024);
        Ok(Some((stored, stream.boxed())))
    }

    async fn delete_file(&self, id: &str) -> io::Result<bool> {
        let Some((path, meta_path)) = self.paths(id) else {
            return Ok(false);
        };
        let existed = match tokio::fs::remove_file(&path).await {
            Ok(()) => true,
            Err(error) if error.kind() == io::ErrorKind::NotFound => false,
            Err(error) => return Err(error),
        };
        match tokio::fs::remove_file(&meta_path).await {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
        Ok(existed)
    }
}

impl Storage for LocalStorage {
    fn put<'a>(
        &'a self,
        file: NewFile,
        data: ByteStream<'a>,
    ) -> BoxFuture<'a, Result<StoredFile, StoreError>> {
        Box::pin(async move { Ok(self.put_file(file, data).await?) })
    }

    fn get<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<(StoredFile, ByteStream<'static>)>, StoreError>> {
        Box::pin(async move { Ok(self.get_file(id).await?) })
    }

    fn delete<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move { Ok(self.delete_file(id).await?) })
    }
}

fn valid_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Removes the file when dropped, unless kept: a failed or abandoned upload leaves nothing.
struct RemoveOnDrop(Option<PathBuf>);

impl RemoveOnDrop {
    fn path(&self) -> &Path {
        self.0.as_deref().unwrap_or_else(|| Path::new(""))
    }

    fn keep(mut self) {
        self.0 = None;
    }
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            // Synchronous on purpose: it must happen even when the task is being cancelled.
            let _ = std::fs::remove_file(path);
        }
    }
}

/// A multipart upload whose file part has been found and checked; [`Upload::save`] stores it.
pub struct Upload {
    // Kept alive: the field reads through the multipart's state.
    multipart: Multipart<'static>,
    field: Field<'static>,
    file_name: Option<String>,
    content_type: String,
    fields: Vec<(String, String)>,
    received: Arc<AtomicU64>,
    content_length: Option<u64>,
    max_size: u64,
}

impl fmt::Debug for Upload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upload")
            .field("file_name", &self.file_name)
            .field("content_type", &self.content_type)
            .field("content_length", &self.content_length)
            .finish_non_exhaustive()
    }
}

/// Multipart headers and padding allowed on top of the file's maximum size before a
/// `Content-Length` alone is refused.
const MULTIPART_OVERHEAD: u64 = 16 * 1024;

fn too_large(max: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "PAYLOAD_TOO_LARGE",
        format!("The file is larger than the maximum of {max} bytes"),
    )
    .with_details(serde_json::json!({ "maxSize": max }))
}

fn no_file(message: &'static str) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "FILE_REQUIRED", message)
}

fn malformed(error: &multer::Error) -> ApiError {
    match error {
        multer::Error::StreamReadFailed(_) => {
            ApiError::bad_request("The upload was interrupted before it completed")
        }
        _ => ApiError::bad_request(format!("Malformed multipart body: {error}")),
    }
}

impl Upload {
    /// Reads `request` up to the file part (field `file` unless set otherwise), collecting
    /// the text fields before it.
    ///
    /// # Errors
    /// `400 FILE_REQUIRED` if the body isn't `multipart/form-data` or has no file,
    /// `400 BAD_REQUEST` if it is malformed, `413 PAYLOAD_TOO_LARGE` if its `Content-Length`
    /// can only mean a file over the maximum (or text fields over theirs), and
    /// `415 UNSUPPORTED_MEDIA_TYPE` if the file's type isn't allowed.
    pub async fn accept(request: Request, limits: &UploadLimits) -> Result<Self, ApiError> {
        let headers = request.headers();
        let boundary = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| multer::parse_boundary(v).ok())
            .ok_or_else(|| {
                no_file("Expected a multipart/form-data body with a file in the `file` field")
            })?;
        let content_length = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let allowance = limits.max_size + MULTIPART_OVERHEAD + limits.max_text as u64;
        if content_length.is_some_and(|length| length > allowance) {
            return Err(too_large(limits.max_size));
        }
        let received = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&received);
        let body = request
            .into_body()
            .into_data_stream()
            .inspect_ok(move |chunk| {
                counter.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            });
        let mut multipart = Multipart::new(body, boundary);
        let mut fields = Vec::new();
        let mut text_budget = limits.max_text;
        loop {
            let Some(mut field) = multipart.next_field().await.map_err(|e| malformed(&e))? else {
                return Err(no_file("No file was sent in the `file` field"));
            };
            if field.name() == Some(limits.field.as_str()) {
                let file_name = field.file_name().map(clean_file_name);
                if file_name.as_deref() == Some("") {
                    return Err(no_file("No file was selected"));
                }
                if file_name.is_none() && field.content_type().is_none() {
                    return Err(no_file("The `file` field must be a file, not text"));
                }
                let content_type = field.content_type().map_or_else(
                    || "application/octet-stream".to_owned(),
                    |m| m.essence_str().to_ascii_lowercase(),
                );
                if !limits.allows(&content_type) {
                    return Err(ApiError::new(
                        StatusCode::UNSUPPORTED_MEDIA_TYPE,
                        "UNSUPPORTED_MEDIA_TYPE",
                        format!("Files of type {content_type} are not accepted"),
                    )
                    .with_details(serde_json::json!({ "allowed": limits.allowed })));
                }
                return Ok(Self {
                    multipart,
                    field,
                    file_name,
                    content_type,
                    fields,
                    received,
                    content_length,
                    max_size: limits.max_size,
                });
            }
            // Another field before the file: keep it if it's small text, within the budget.
            let name = field.name().unwrap_or_default().to_owned();
            let is_file = field.file_name().is_some();
            let mut value = Vec::new();
            while let Some(chunk) = field.chunk().await.map_err(|e| malformed(&e))? {
                if chunk.len() > text_budget {
                    return Err(ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "PAYLOAD_TOO_LARGE",
                        format!(
                            "The fields before the file exceed {} bytes",
                            limits.max_text
                        ),
                    ));
                }
                text_budget -= chunk.len();
                if !is_file {
                    value.extend_from_slice(&chunk);
                }
            }
            if !is_file {
                fields.push((name, String::from_utf8_lossy(&value).into_owned()));
            }
        }
    }

    /// The client's file name, without any directory part (metadata: never a path).
    pub fn file_name(&self) -> Option<&str> {
        self.file_name.as_deref()
    }

    /// The file's declared media type (lowercase, without parameters).
    pub fn content_type(&self) -> &str {
        &self.content_type
    }

    /// A text field sent before the file.
    pub fn text_field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The request's `Content-Length`, if any (file size plus multipart framing).
    pub fn content_length(&self) -> Option<u64> {
        self.content_length
    }

    /// Streams the file into `storage`, calling `on_progress` as it goes (whenever the
    /// percentage changes, or every MiB without a `Content-Length`, and once at the end).
    ///
    /// # Errors
    /// `413 PAYLOAD_TOO_LARGE` past the maximum, `400` if the upload is interrupted or
    /// malformed, `507 STORE_FULL` if the storage is full, `503` if it is out of reach, `500`
    /// if it fails otherwise. In every case nothing is kept.
    pub async fn save<S, P>(self, storage: &S, mut on_progress: P) -> Result<StoredFile, ApiError>
    where
        S: Storage + ?Sized,
        P: FnMut(UploadProgress) + Send,
    {
        let failure: Arc<Mutex<Option<ApiError>>> = Arc::default();
        let Self {
            multipart,
            field,
            file_name,
            content_type,
            received,
            content_length,
            max_size,
            ..
        } = self;
        let pump = Pump {
            field,
            written: 0,
            max_size,
            received,
            total: content_length,
            last_report: None,
            failed: false,
            failure: Arc::clone(&failure),
            on_progress: &mut on_progress,
        };
        let data = stream::unfold(pump, Pump::next).boxed();
        let result = storage
            .put(
                NewFile {
                    file_name,
                    content_type,
                },
                data,
            )
            .await;
        drop(multipart);
        let recorded = failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        match (result, recorded) {
            (_, Some(error)) => Err(error),
            (Ok(stored), None) => {
                ::metrics::counter!(crate::metrics::UPLOAD_BYTES).increment(stored.size);
                on_progress(UploadProgress {
                    bytes: stored.size,
                    total: content_length,
                    percent: Some(100),
                });
                Ok(stored)
            }
            // A full disk is `507`, a backend out of reach `503`, anything else `500`.
            (Err(error), None) => Err(ApiError::from(error)),
        }
    }
}

/// Reads the file part chunk by chunk, enforcing the maximum and reporting progress.
struct Pump<'p, P> {
    field: Field<'static>,
    written: u64,
    max_size: u64,
    received: Arc<AtomicU64>,
    total: Option<u64>,
    last_report: Option<u64>,
    failed: bool,
    failure: Arc<Mutex<Option<ApiError>>>,
    on_progress: &'p mut P,
}

impl<'p, P: FnMut(UploadProgress) + Send> Pump<'p, P> {
    async fn next(mut self) -> Option<(io::Result<Bytes>, Self)> {
        if self.failed {
            return None;
        }
        let error = match self.field.chunk().await {
            Ok(None) => return None,
            Ok(Some(chunk)) => {
                self.written += chunk.len() as u64;
                if self.written > self.max_size {
                    too_large(self.max_size)
                } else {
                    self.report();
                    return Some((Ok(chunk), self));
                }
            }
            Err(error) => malformed(&error),
        };
        self.failed = true;
        let message = error.message().to_owned();
        *self
            .failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(error);
        Some((Err(io::Error::other(message)), self))
    }

    fn report(&mut self) {
        let received = self.received.load(Ordering::Relaxed);
        let (mark, percent) = match self.total {
            Some(total) if total > 0 => {
                let percent = (received.saturating_mul(100) / total).min(99);
                (percent, Some(u8::try_from(percent).unwrap_or(99)))
            }
            _ => (self.written >> 20, None),
        };
        if self.last_report != Some(mark) {
            self.last_report = Some(mark);
            (self.on_progress)(UploadProgress {
                bytes: self.written,
                total: self.total,
                percent,
            });
        }
    }
}

/// The client's file name without any directory (`C:\fakepath\a.png` → `a.png`), control
/// characters, or more than 255 bytes.
fn clean_file_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let mut clean: String = base.chars().filter(|c| !c.is_control()).collect();
    if clean.len() > 255 {
        let mut end = 255;
        while !clean.is_char_boundary(end) {
            end -= 1;
        }
        clean.truncate(end);
    }
    clean.trim().to_owned()
}

/// Types a browser may show inline; anything else is served as an attachment.
fn inline_type(content_type: &str) -> bool {
    if content_type == "image/svg+xml" {
        return false; // SVG can carry script
    }
    ["image/", "audio/", "video/"]
        .iter()
        .any(|prefix| content_type.starts_with(prefix))
        || matches!(content_type, "application/pdf" | "text/plain")
}

/// Streams stored file `id` back: its type, length, and a `Content-Disposition` with the
/// original name. The response also carries `X-Content-Type-Options: nosniff` and a sandboxing
/// `Content-Security-Policy`, so an uploaded file can't run script on your origin.
///
/// # Errors
/// `404 NOT_FOUND` if there is no such file, `500` if the storage fails.
pub async fn serve_file<S: Storage + ?Sized>(storage: &S, id: &str) -> Result<Response, ApiError> {
    let Some((stored, data)) = storage.get(id).await? else {
        return Err(ApiError::not_found("No such file"));
    };
    let mut response = Response::new(Body::from_stream(data));
    let headers = response.headers_mut();
    let content_type = HeaderValue::from_str(&stored.content_type)
        .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"));
    headers.insert(header::CONTENT_TYPE, content_type);
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(stored.size));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    let disposition = if inline_type(&stored.content_type) {
        "inline"
    } else {
        "attachment"
    };
    let name = stored.file_name.as_deref().unwrap_or(&stored.id);
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded = percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC);
    if let Ok(value) = HeaderValue::from_str(&format!(
        "{disposition}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}"
    )) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_file_names_lose_their_directories() {
        assert_eq!(clean_file_name("../../etc/passwd"), "passwd");
        assert_eq!(clean_file_name("C:\\fakepath\\photo.png"), "photo.png");
        assert_eq!(clean_file_name("a\u{0}b\n.txt"), "ab.txt");
        assert_eq!(clean_file_name(&"é".repeat(200)).len(), 254);
    }

    #[test]
    fn allowed_types_match_exactly_or_by_kind() {
        let limits = UploadLimits::new().allow(["image/*", "Application/PDF"]);
        assert!(limits.allows("image/png"));
        assert!(limits.allows("application/pdf"));
        assert!(!limits.allows("text/html"));
        assert!(!limits.allows("imagex/png"));
        assert!(UploadLimits::new().allows("text/html"));
    }

    #[test]
    fn storage_ids_are_checked_before_any_path_is_built() {
        let storage = LocalStorage::new("/tmp/x");
        assert!(storage.paths("../../etc/passwd").is_none());
        assert!(storage.paths("0123456789abcdef0123456789abcdeF").is_none());
        assert!(storage.paths("0123456789abcdef0123456789abcdef").is_some());
    }
}
