//! Progress streams carry every step and the result (or the error) intact, whatever their
//! messages. Fields: the result (its first byte odd: the work fails with it), then up to six
//! steps, each a percentage byte and a message (none when empty).
#![no_main]

use std::sync::LazyLock;

use arbor::test::{ProgressEvent, TestClient};
use arbor::App;
use arbor_fuzz::fields;
use axum::routing::post;
use libfuzzer_sys::fuzz_target;

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(arbor_fuzz::runtime);

fuzz_target!(|data: &[u8]| {
    let parts = fields(data, 7);
    let fails = parts[0].first().is_some_and(|byte| byte % 2 == 1);
    let result = String::from_utf8_lossy(parts[0]).into_owned();
    let steps: Vec<(u8, Option<String>)> = parts[1..]
        .iter()
        .filter(|step| !step.is_empty())
        .map(|step| {
            let message = String::from_utf8_lossy(&step[1..]).into_owned();
            (step[0] % 101, (!message.is_empty()).then_some(message))
        })
        .collect();
    RUNTIME.block_on(async {
        let (work_steps, work_result) = (steps.clone(), result.clone());
        let routes = arbor::Router::new().route(
            "/work",
            post(move || {
                let (steps, result) = (work_steps.clone(), work_result.clone());
                async move {
                    arbor::progress::stream(move |progress| async move {
                        for (percent, message) in steps {
                            match message {
                                Some(message) => progress.step(percent, message).await,
                                None => progress.processing(percent).await,
                            };
                        }
                        if fails {
                            return Err(arbor::ApiError::bad_request(result));
                        }
                        Ok(result)
                    })
                }
            }),
        );
        let client = TestClient::new(App::new(routes).into_router());
        let mut stream = client.post("/work").stream().await;
        assert_eq!(stream.next_progress().await, Some(ProgressEvent::Started));
        for (percent, message) in &steps {
            assert_eq!(
                stream.next_progress().await,
                Some(ProgressEvent::Processing {
                    progress: *percent,
                    message: message.clone()
                })
            );
        }
        let last = stream.next_progress().await;
        if fails {
            let Some(ProgressEvent::Failed { error, message, .. }) = last else {
                panic!("{last:?}")
            };
            assert_eq!(
                (error.as_str(), message.as_str()),
                ("BAD_REQUEST", &*result)
            );
        } else {
            assert_eq!(
                last,
                Some(ProgressEvent::Complete {
                    result: serde_json::json!(result)
                })
            );
        }
        assert_eq!(stream.next_progress().await, None);
    });
});
