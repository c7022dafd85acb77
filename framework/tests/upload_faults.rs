//! Uploads when things go wrong, over real TCP. A client that hangs up halfway, or resets its
//! HTTP/2 stream halfway, leaves nothing behind. A write the filesystem refuses (here a file-size limit, which fails the write as a
//! full disk would) is answered `507 STORE_FULL`, and nothing half-written is kept.
//!
//! The size limit (`RLIMIT_FSIZE`) is per process, so these tests have a binary of their own.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use arbor::upload::{LocalStorage, Upload, UploadLimits};
use arbor::{App, Json};
use axum::routing::post;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Tells the test when a request's handler is gone, answered or dropped mid-way.
struct Finished(mpsc::UnboundedSender<()>);

impl Drop for Finished {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

async fn serve(dir: &Path) -> (SocketAddr, mpsc::UnboundedReceiver<()>) {
    let storage = LocalStorage::new(dir);
    let (finished, handlers_done) = mpsc::unbounded_channel();
    let routes = arbor::Router::new().route(
        "/upload",
        post(move |request: arbor::Request| {
            let storage = storage.clone();
            // Declared first, so dropped last: after the upload's own clean-up.
            let finished = Finished(finished.clone());
            async move {
                let _finished = finished;
                let limits = UploadLimits::new().max_size(10 * 1024 * 1024);
                let upload = Upload::accept(request, &limits).await?;
                let file = upload.save(&storage, |_| {}).await?;
                Ok::<_, arbor::ApiError>(Json(file.size))
            }
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let router = App::new(routes).timeout(None).into_router();
    tokio::spawn(arbor::serve_with(
        listener,
        router,
        arbor::ServeOptions::default().signals(false),
    ));
    (address, handlers_done)
}

/// The multipart body up to the file's bytes, and after them.
const MULTIPART_START: &[u8] = b"--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n";
const MULTIPART_END: &[u8] = b"\r\n--B--\r\n";

/// The head and the start of a multipart upload whose file is `size` bytes.
fn upload_head(size: usize) -> (Vec<u8>, Vec<u8>) {
    let (start, end) = (MULTIPART_START, MULTIPART_END);
    let length = start.len() + size + end.len();
    let head = format!(
        "POST /upload HTTP/1.1\r\nhost: test\r\nconnection: close\r\ncontent-type: multipart/form-data; boundary=B\r\ncontent-length: {length}\r\n\r\n"
    );
    let mut first = head.into_bytes();
    first.extend_from_slice(start);
    (first, end.to_vec())
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect()
}

#[tokio::test]
async fn a_client_that_hangs_up_mid_upload_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let (address, mut handlers_done) = serve(dir.path()).await;
    let (first, _) = upload_head(1024 * 1024);
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(&first).await.unwrap();
    stream.write_all(&vec![7u8; 64 * 1024]).await.unwrap();
    stream.flush().await.unwrap();
    // Wait until the part file exists, so the hang-up lands in the middle of the write.
    part_file_written(dir.path()).await;
    drop(stream);
    tokio::time::timeout(Duration::from_secs(10), handlers_done.recv())
        .await
        .expect("the server noticed the hang-up")
        .unwrap();
    assert_eq!(files_in(dir.path()), Vec::<PathBuf>::new());
}

/// Resolves once the upload has started writing its part file.
async fn part_file_written(dir: &Path) {
    let written = async {
        while !files_in(dir)
            .iter()
            .any(|file| file.extension().is_some_and(|e| e == "part"))
        {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), written)
        .await
        .expect("the upload started writing");
}

#[tokio::test]
async fn an_http2_stream_reset_mid_upload_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let (address, mut handlers_done) = serve(dir.path()).await;
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    // The body comes from this channel: the start of the file, then a failure, on which the
    // client resets the stream (`RST_STREAM`) while the connection stays open.
    let (body, chunks) = mpsc::unbounded_channel::<Result<Vec<u8>, std::io::Error>>();
    let stream = futures_util::stream::unfold(chunks, |mut chunks| async move {
        chunks.recv().await.map(|chunk| (chunk, chunks))
    });
    let upload = tokio::spawn(
        client
            .post(format!("http://{address}/upload"))
            .header("content-type", "multipart/form-data; boundary=B")
            .body(reqwest::Body::wrap_stream(stream))
            .send(),
    );
    let mut start = MULTIPART_START.to_vec();
    start.extend_from_slice(&vec![7u8; 64 * 1024]);
    body.send(Ok(start)).unwrap();
    part_file_written(dir.path()).await;
    body.send(Err(std::io::Error::other("the client gives up")))
        .unwrap();
    assert!(upload.await.unwrap().is_err(), "the request was reset");
    tokio::time::timeout(Duration::from_secs(10), handlers_done.recv())
        .await
        .expect("the server noticed the reset")
        .unwrap();
    assert_eq!(files_in(dir.path()), Vec::<PathBuf>::new());
    // The connection survives a reset stream: the next request on it is served.
    let served = client
        .post(format!("http://{address}/upload"))
        .header("content-type", "multipart/form-data; boundary=B")
        .body([MULTIPART_START, b"small", MULTIPART_END].concat())
        .send()
        .await
        .unwrap();
    assert_eq!(served.version(), reqwest::Version::HTTP_2);
    assert_eq!(served.text().await.unwrap(), "5");
}

#[tokio::test]
async fn a_write_the_filesystem_refuses_is_507_and_keeps_nothing() {
    // Writes past 256 KiB fail with EFBIG; without a handler, SIGXFSZ would end the process.
    let _signal =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::from_raw(25)).unwrap();
    rlimit::Resource::FSIZE
        .set(256 * 1024, rlimit::INFINITY)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (address, mut handlers_done) = serve(dir.path()).await;
    let size = 1024 * 1024;
    let (mut request, end) = upload_head(size);
    request.extend_from_slice(&vec![7u8; size]);
    request.extend_from_slice(&end);
    let mut stream = TcpStream::connect(address).await.unwrap();
    // The server may answer before it has read everything.
    let _ = stream.write_all(&request).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 507 "), "{answer}");
    assert!(answer.contains(r#""error":"STORE_FULL""#), "{answer}");
    tokio::time::timeout(Duration::from_secs(10), handlers_done.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(files_in(dir.path()), Vec::<PathBuf>::new());
}
