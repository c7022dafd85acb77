//! The response cache and the Cache-Control helpers, through real routers.

#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arbor::auth::{optional_auth, require_auth, Authenticator};
use arbor::cache::{
    cache, cache_control, CacheControl, CacheTags, Invalidator, ManualClock, MemoryCacheStore,
    Revalidate,
};
use arbor::store::Stores;
use arbor::test::{TestClient, TestResponse};
use arbor::{ApiError, IntoResponse, Response};
use axum::body::Body;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use http::{header, HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use tower::{Layer, ServiceExt};

#[derive(Clone, Default)]
struct Counter(Arc<AtomicUsize>);

impl Counter {
    fn bump(&self) -> usize {
        self.0.fetch_add(1, Ordering::SeqCst) + 1
    }

    fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

fn x_cache(response: &TestResponse) -> Option<&str> {
    response.header("x-cache")
}

/// A route whose handler counts its runs and answers `run <n>`, with extra headers.
fn counting_route(
    counter: &Counter,
    headers: &'static [(&'static str, &'static str)],
) -> axum::routing::MethodRouter {
    let counter = counter.clone();
    get(move || {
        let counter = counter.clone();
        async move {
            let n = counter.bump();
            let mut response = format!("run {n}").into_response();
            for (name, value) in headers {
                response.headers_mut().append(*name, value.parse().unwrap());
            }
            response
        }
    })
}

#[tokio::test]
async fn a_repeat_is_a_hit_with_the_same_status_headers_and_body() {
    let counter = Counter::default();
    let handler_counter = counter.clone();
    let route = get(move || {
        let counter = handler_counter.clone();
        async move {
            let n = counter.bump();
            (
                StatusCode::ACCEPTED,
                [("x-custom", "kept")],
                arbor::Json(serde_json::json!({ "run": n })),
            )
        }
    });
    let client = TestClient::new(Router::new().route("/x", route.route_layer(cache().ttl(60))));

    let first = client.get("/x").send().await;
    assert_eq!(x_cache(&first), Some("MISS"));
    let second = client.get("/x").send().await;
    assert_eq!(x_cache(&second), Some("HIT"));
    assert_eq!(second.status(), StatusCode::ACCEPTED);
    assert_eq!(second.header("x-custom"), Some("kept"));
    assert_eq!(second.header("content-type"), Some("application/json"));
    assert_eq!(second.header("age"), Some("0"));
    assert_eq!(second.text(), r#"{"run":1}"#);
    assert_eq!(first.text(), second.text());
    assert_eq!(counter.get(), 1);
}

#[tokio::test]
async fn the_query_string_is_part_of_the_key() {
    let counter = Counter::default();
    let client = TestClient::new(
        Router::new().route("/x", counting_route(&counter, &[]).route_layer(cache())),
    );
    assert_eq!(x_cache(&client.get("/x?a=1").send().await), Some("MISS"));
    assert_eq!(x_cache(&client.get("/x?a=2").send().await), Some("MISS"));
    assert_eq!(x_cache(&client.get("/x").send().await), Some("MISS"));
    let again = client.get("/x?a=1").send().await;
    assert_eq!(x_cache(&again), Some("HIT"));
    assert_eq!(again.text(), "run 1");
    assert_eq!(counter.get(), 3);
}

#[tokio::test]
async fn vary_headers_keep_one_entry_per_value() {
    let counter = Counter::default();
    let handler_counter = counter.clone();
    let route = get(move |headers: HeaderMap| {
        let counter = handler_counter.clone();
        async move {
            counter.bump();
            let language = headers
                .get("accept-language")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("none")
                .to_owned();
            ([(header::VARY, "Accept-Language")], language)
        }
    });
    let client = TestClient::new(Router::new().route("/x", route.route_layer(cache())));
    let send = |language: Option<&'static str>| {
        let mut request = client.get("/x");
        if let Some(language) = language {
            request = request.header("accept-language", language);
        }
        request.send()
    };

    let en = send(Some("en")).await;
    assert_eq!((x_cache(&en), en.text().as_str()), (Some("MISS"), "en"));
    let fr = send(Some("fr")).await;
    assert_eq!((x_cache(&fr), fr.text().as_str()), (Some("MISS"), "fr"));
    let en = send(Some("en")).await;
    assert_eq!((x_cache(&en), en.text().as_str()), (Some("HIT"), "en"));
    let fr = send(Some("fr")).await;
    assert_eq!((x_cache(&fr), fr.text().as_str()), (Some("HIT"), "fr"));
    let none = send(None).await;
    assert_eq!(
        (x_cache(&none), none.text().as_str()),
        (Some("MISS"), "none")
    );
    let none = send(None).await;
    assert_eq!(
        (x_cache(&none), none.text().as_str()),
        (Some("HIT"), "none")
    );
    assert_eq!(counter.get(), 3);
}

#[tokio::test]
async fn errors_are_never_cached() {
    let counter = Counter::default();
    let handler_counter = counter.clone();
    let route = get(move |uri: http::Uri| {
        let counter = handler_counter.clone();
        async move {
            counter.bump();
            match uri.query() {
                Some("fail") => Err(ApiError::internal()),
                Some("redirect") => Ok(StatusCode::FOUND.into_response()),
                _ => Err(ApiError::not_found("nothing here")),
            }
        }
    });
    let client = TestClient::new(Router::new().route("/x", route.route_layer(cache())));
    for uri in ["/x", "/x?fail", "/x?redirect"] {
        for _ in 0..2 {
            let response = client.get(uri).send().await;
            assert!(!response.status().is_success());
            assert_eq!(x_cache(&response), Some("MISS"), "{uri}");
        }
    }
    assert_eq!(counter.get(), 6);
}

#[tokio::test]
async fn other_methods_pass_straight_through() {
    let gets = Counter::default();
    let posts = Counter::default();
    let post_counter = posts.clone();
    let route = counting_route(&gets, &[]).post(move || {
        let counter = post_counter.clone();
        async move { format!("post {}", counter.bump()) }
    });
    let client = TestClient::new(Router::new().route("/x", route.route_layer(cache())));

    for n in 1..=2 {
        let response = client.post("/x").send().await;
        assert_eq!(response.text(), format!("post {n}"));
        assert_eq!(x_cache(&response), None);
        let response = client.request(Method::DELETE, "/x").send().await;
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    }
    client.get("/x").send().await;
    assert_eq!(x_cache(&client.get("/x").send().await), Some("HIT"));
    assert_eq!((gets.get(), posts.get()), (1, 2));
}

#[tokio::test]
async fn private_no_store_no_cache_cookies_and_vary_star_are_not_cached() {
    let cases: [(&str, &'static [(&'static str, &'static str)]); 6] = [
        ("/private", &[("cache-control", "private, max-age=60")]),
        ("/no-store", &[("cache-control", "no-store")]),
        ("/no-cache", &[("cache-control", "private, no-cache")]),
        ("/zero", &[("cache-control", "public, s-maxage=0")]),
        ("/cookie", &[("set-cookie", "session=abc; HttpOnly")]),
        ("/vary-star", &[("vary", "*")]),
    ];
    let mut router = Router::new();
    let mut counters = Vec::new();
    for (path, headers) in cases {
        let counter = Counter::default();
        router = router.route(path, counting_route(&counter, headers).route_layer(cache()));
        counters.push((path, counter));
    }
    let client = TestClient::new(router);
    for (path, counter) in &counters {
        for _ in 0..2 {
            assert_eq!(
                x_cache(&client.get(path).send().await),
                Some("MISS"),
                "{path}"
            );
        }
        assert_eq!(counter.get(), 2, "{path} was served from the cache");
    }
}

#[tokio::test]
async fn credentialed_requests_only_share_public_responses() {
    let plain = Counter::default();
    let public = Counter::default();
    let router = Router::new()
        .route("/plain", counting_route(&plain, &[]).route_layer(cache()))
        .route(
            "/public",
            counting_route(&public, &[("cache-control", "public, max-age=60")])
                .route_layer(cache()),
        );
    let client = TestClient::new(router);

    // Anonymous fills the cache; requests with credentials neither use nor fill it.
    assert_eq!(x_cache(&client.get("/plain").send().await), Some("MISS"));
    for (name, value) in [("authorization", "Bearer a"), ("cookie", "session=a")] {
        let response = client.get("/plain").header(name, value).send().await;
        assert_eq!(x_cache(&response), Some("MISS"), "{name}");
    }
    assert_eq!(plain.get(), 3);
    let anonymous = client.get("/plain").send().await;
    assert_eq!(
        (x_cache(&anonymous), anonymous.text().as_str()),
        (Some("HIT"), "run 1")
    );

    // A response marked public is stored and shared whoever asks.
    let first = client
        .get("/public")
        .header("authorization", "Bearer a")
        .send()
        .await;
    assert_eq!(x_cache(&first), Some("MISS"));
    let again = client
        .get("/public")
        .header("cookie", "session=b")
        .send()
        .await;
    assert_eq!(x_cache(&again), Some("HIT"));
    assert_eq!(x_cache(&client.get("/public").send().await), Some("HIT"));
    assert_eq!(public.get(), 1);
}

#[tokio::test]
async fn entries_expire_on_the_injected_clock() {
    let clock = ManualClock::new();
    let counter = Counter::default();
    let short = Counter::default();
    let router = Router::new()
        .route(
            "/x",
            counting_route(&counter, &[]).route_layer(cache().ttl(60).clock(clock.clone())),
        )
        .route(
            "/short",
            counting_route(
                &short,
                &[("cache-control", "public, max-age=300, s-maxage=10")],
            )
            .route_layer(cache().ttl(60).clock(clock.clone())),
        );
    let client = TestClient::new(router);

    assert_eq!(x_cache(&client.get("/x").send().await), Some("MISS"));
    assert_eq!(x_cache(&client.get("/short").send().await), Some("MISS"));
    clock.advance(Duration::from_secs(9));
    assert_eq!(x_cache(&client.get("/short").send().await), Some("HIT"));
    clock.advance(Duration::from_secs(50));
    let hit = client.get("/x").send().await;
    assert_eq!(
        (x_cache(&hit), hit.header("age")),
        (Some("HIT"), Some("59"))
    );
    // s-maxage=10 shortened the route's 60 s.
    assert_eq!(x_cache(&client.get("/short").send().await), Some("MISS"));
    clock.advance(Duration::from_secs(1));
    let expired = client.get("/x").send().await;
    assert_eq!(
        (x_cache(&expired), expired.text().as_str()),
        (Some("MISS"), "run 2")
    );
    assert_eq!(x_cache(&client.get("/x").send().await), Some("HIT"));
    assert_eq!((counter.get(), short.get()), (2, 2));
}

#[tokio::test]
async fn head_is_answered_from_the_get_entry_without_a_body() {
    let counter = Counter::default();
    let handler_counter = counter.clone();
    let service = cache().layer(tower::service_fn(move |_request: Request<Body>| {
        let n = handler_counter.bump();
        async move { Ok::<_, Infallible>(format!("hello {n}").into_response()) }
    }));
    let call = |method: Method| {
        let request = Request::builder()
            .method(method)
            .uri("/x")
            .body(Body::empty())
            .unwrap();
        let service = service.clone();
        async move {
            let response: Response = service.oneshot(request).await.unwrap();
            let (parts, body) = response.into_parts();
            (parts, body.collect().await.unwrap().to_bytes())
        }
    };

    // A HEAD miss does not fill the cache.
    let (parts, _) = call(Method::HEAD).await;
    assert_eq!(parts.headers["x-cache"], "MISS");
    let (parts, body) = call(Method::GET).await;
    assert_eq!(
        (parts.headers["x-cache"].to_str().unwrap(), &body[..]),
        ("MISS", &b"hello 2"[..])
    );

    let (parts, body) = call(Method::HEAD).await;
    assert_eq!(parts.headers["x-cache"], "HIT");
    assert_eq!(parts.headers[header::CONTENT_LENGTH], "7");
    assert!(body.is_empty());
    assert_eq!(counter.get(), 2);

    // Through a router, HEAD on a GET route is a hit too.
    let counter = Counter::default();
    let client = TestClient::new(
        Router::new().route("/x", counting_route(&counter, &[]).route_layer(cache())),
    );
    client.get("/x").send().await;
    let head = client.head("/x").send().await;
    assert_eq!((x_cache(&head), head.bytes().len()), (Some("HIT"), 0));
    assert_eq!(head.header("content-length"), Some("5"));
    assert_eq!(counter.get(), 1);
}

#[tokio::test]
async fn bodies_over_the_cap_pass_through_whole_and_uncached() {
    const CHUNK: usize = 64 * 1024;
    const CHUNKS: usize = 20; // 1.25 MiB, over the default 1 MiB
    let streamed = Counter::default();
    let sized = Counter::default();
    let small = Counter::default();
    let streamed_counter = streamed.clone();
    let sized_counter = sized.clone();
    let router = Router::new()
        .route(
            "/stream",
            get(move || {
                streamed_counter.bump();
                async move {
                    let chunks =
                        (0..CHUNKS).map(|i| Ok::<_, Infallible>(Bytes::from(vec![i as u8; CHUNK])));
                    Body::from_stream(futures_util::stream::iter(chunks))
                }
            })
            .route_layer(cache()),
        )
        .route(
            "/sized",
            get(move || {
                sized_counter.bump();
                async move { vec![7u8; 2 * 1024 * 1024] }
            })
            .route_layer(cache()),
        )
        .route(
            "/small",
            counting_route(&small, &[]).route_layer(cache().max_body_bytes(5)),
        )
        .route(
            "/tiny-cap",
            counting_route(&small, &[]).route_layer(cache().max_body_bytes(4)),
        );
    let client = TestClient::new(router);

    let expected: Vec<u8> = (0..CHUNKS).flat_map(|i| vec![i as u8; CHUNK]).collect();
    for _ in 0..2 {
        let response = client.get("/stream").send().await;
        assert_eq!(x_cache(&response), Some("MISS"));
        assert_eq!(response.bytes().len(), expected.len());
        assert!(
            response.bytes()[..] == expected[..],
            "streamed body was altered"
        );
        let response = client.get("/sized").send().await;
        assert_eq!(x_cache(&response), Some("MISS"));
        assert_eq!(response.bytes().len(), 2 * 1024 * 1024);
    }
    assert_eq!((streamed.get(), sized.get()), (2, 2));

    // Exactly at the cap is cached; one byte over is not.
    client.get("/small").send().await;
    assert_eq!(x_cache(&client.get("/small").send().await), Some("HIT"));
    client.get("/tiny-cap").send().await;
    let over = client.get("/tiny-cap").send().await;
    assert_eq!(
        (x_cache(&over), over.text().as_str()),
        (Some("MISS"), "run 3")
    );
}

#[tokio::test(flavor = "current_thread")]
async fn concurrent_misses_run_the_handler_once() {
    let counter = Counter::default();
    let entered = Arc::new(tokio::sync::Semaphore::new(0));
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let (handler_counter, handler_entered, handler_gate) =
        (counter.clone(), entered.clone(), gate.clone());
    let route = get(move || {
        let (counter, entered, gate) = (
            handler_counter.clone(),
            handler_entered.clone(),
            handler_gate.clone(),
        );
        async move {
            let n = counter.bump();
            entered.add_permits(1);
            let _permit = gate.acquire().await.unwrap();
            format!("run {n}")
        }
    });
    let client = TestClient::new(Router::new().route("/slow", route.route_layer(cache())));

    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.get("/slow").send().await })
        })
        .collect();
    // The first request is in the handler; let the other nine reach the cache and wait.
    entered.acquire().await.unwrap().forget();
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
    gate.add_permits(100);

    let mut hits = 0;
    for task in tasks {
        let response = task.await.unwrap();
        assert_eq!(response.text(), "run 1");
        if x_cache(&response) == Some("HIT") {
            hits += 1;
        }
    }
    assert_eq!(counter.get(), 1);
    assert_eq!(hits, 9);
}

#[tokio::test]
async fn cache_control_sets_a_default_only_where_it_belongs() {
    let router = Router::new()
        .route(
            "/default",
            get(|| async { "data" })
                .route_layer(cache_control(CacheControl::public().s_maxage(60))),
        )
        .route(
            "/own",
            get(|| async { (CacheControl::private_no_cache(), "mine") })
                .route_layer(cache_control(CacheControl::public().s_maxage(60))),
        )
        .route(
            "/error",
            get(|| async { ApiError::not_found("gone") })
                .route_layer(cache_control(CacheControl::public().s_maxage(60))),
        )
        .route(
            "/error-no-store",
            get(|| async { ApiError::not_found("gone") })
                .route_layer(cache_control(CacheControl::no_store())),
        );
    let client = TestClient::new(router);
    let cache_control_of =
        |response: &TestResponse| response.header("cache-control").map(str::to_owned);

    let default = client.get("/default").send().await;
    assert_eq!(
        cache_control_of(&default).as_deref(),
        Some("public, s-maxage=60")
    );
    let own = client.get("/own").send().await;
    assert_eq!(cache_control_of(&own).as_deref(), Some("private, no-cache"));
    assert_eq!(own.headers().get_all("cache-control").iter().count(), 1);
    let error = client.get("/error").send().await;
    assert_eq!(
        (error.status(), cache_control_of(&error)),
        (StatusCode::NOT_FOUND, None)
    );
    let error = client.get("/error-no-store").send().await;
    assert_eq!(cache_control_of(&error).as_deref(), Some("no-store"));
}

#[allow(non_snake_case, unreachable_pub)]
mod route_file {
    //! What a route file looks like: the middleware list syntax expands to these layers.
    use arbor::cache::{cache, cache_control, CacheControl};

    #[arbor::handler(cache_control(CacheControl::public().s_maxage(60)), cache(ttl = 60, max_entries = 10))]
    pub async fn GET() -> &'static str {
        "listed"
    }
}

#[tokio::test]
async fn the_middleware_list_syntax_works_with_the_cache() {
    let route = route_file::__arbor_handler_middleware_GET(get(route_file::GET), &());
    let client = TestClient::new(Router::new().route("/listed", route));
    let first = client.get("/listed").send().await;
    let second = client.get("/listed").send().await;
    assert_eq!(
        (x_cache(&first), x_cache(&second)),
        (Some("MISS"), Some("HIT"))
    );
    assert_eq!(second.header("cache-control"), Some("public, s-maxage=60"));
    assert_eq!(second.text(), "listed");
}

/// A route that counts its runs, cached with the layer's tag `items` and the response's tag
/// `item:<id>`.
fn tagged_route(counter: &Counter) -> axum::routing::MethodRouter {
    let counter = counter.clone();
    get(move |arbor::Path(id): arbor::Path<String>| {
        let counter = counter.clone();
        async move {
            let n = counter.bump();
            (
                CacheTags::new([format!("item:{id}")]),
                format!("{id} run {n}"),
            )
        }
    })
    .route_layer(cache().ttl(60).tags(["items"]))
}

async fn invalidation_by_url_and_tag(stores: Option<Stores>) {
    let counter = Counter::default();
    let mut router = Router::new().route("/items/{id}", tagged_route(&counter));
    if let Some(stores) = &stores {
        router = router.layer(axum::Extension(stores.clone()));
    }
    let client = TestClient::new(router);
    let invalidate = Invalidator::new(stores);
    // Unique ids: the layers of every test in this process share the invalidation registry.
    let id = uuid_like();
    let (a, b) = (format!("/items/{id}-a"), format!("/items/{id}-b"));
    let warm = |path: &str| {
        let request = client.get(path);
        async move {
            let response = request.send().await;
            x_cache(&response).unwrap().to_owned()
        }
    };
    assert_eq!(warm(&a).await, "MISS");
    assert_eq!(warm(&b).await, "MISS");
    assert_eq!(
        (warm(&a).await, warm(&b).await),
        ("HIT".into(), "HIT".into())
    );

    // By URL: only that URL.
    assert!(invalidate.path(&a).await.unwrap());
    assert_eq!(
        (warm(&a).await, warm(&b).await),
        ("MISS".into(), "HIT".into())
    );
    // By the response's own tag: only that item.
    invalidate.tag(&format!("item:{id}-b")).await.unwrap();
    assert_eq!(
        (warm(&a).await, warm(&b).await),
        ("HIT".into(), "MISS".into())
    );
    // By the layer's tag: every item.
    invalidate.tag("items").await.unwrap();
    assert_eq!(
        (warm(&a).await, warm(&b).await),
        ("MISS".into(), "MISS".into())
    );
    assert_eq!(
        (warm(&a).await, warm(&b).await),
        ("HIT".into(), "HIT".into())
    );
    assert_eq!(counter.get(), 6);
    // A tag nobody used, and a URL nothing cached.
    invalidate.tag("unused").await.unwrap();
    assert!(!invalidate.path("/items/never").await.unwrap());
    assert_eq!(
        (warm(&a).await, warm(&b).await),
        ("HIT".into(), "HIT".into())
    );
}

fn uuid_like() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{nanos:x}-{}", NEXT.fetch_add(1, Ordering::SeqCst))
}

#[tokio::test]
async fn invalidation_by_url_and_tag_in_the_layers_own_memory() {
    invalidation_by_url_and_tag(None).await;
}

#[tokio::test]
async fn invalidation_by_url_and_tag_in_a_shared_store() {
    let stores = Stores::new().cache(MemoryCacheStore::default());
    invalidation_by_url_and_tag(Some(stores)).await;
}

/// A response whose request started before its tag was invalidated is not kept: what the
/// handler read may be what changed.
#[tokio::test]
async fn a_response_produced_across_an_invalidation_is_not_stored() {
    for stores in [None, Some(Stores::new().cache(MemoryCacheStore::default()))] {
        let tag = format!("race-{}", uuid_like());
        let (reached, reached_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        let release = Arc::new(tokio::sync::Notify::new());
        let counter = Counter::default();
        let (route_release, route_counter, route_tag) =
            (release.clone(), counter.clone(), tag.clone());
        let reached = Arc::new(std::sync::Mutex::new(Some(reached)));
        let route = get(move || {
            let (release, counter, reached) = (
                route_release.clone(),
                route_counter.clone(),
                reached.clone(),
            );
            async move {
                let n = counter.bump();
                if n == 1 {
                    // The first run waits, mid-handler, until the test has invalidated the tag.
                    let _ = reached.lock().unwrap().take().unwrap().send(());
                    release.notified().await;
                }
                format!("run {n}")
            }
        })
        .route_layer(cache().ttl(60).tags([route_tag]));
        let mut router = Router::new().route("/slow", route);
        if let Some(stores) = &stores {
            router = router.layer(axum::Extension(stores.clone()));
        }
        let client = TestClient::new(router);
        let first = tokio::spawn(client.get("/slow").send());
        let mut reached_rx = reached_rx;
        reached_rx.recv().await.unwrap();
        Invalidator::new(stores.clone()).tag(&tag).await.unwrap();
        release.notify_one();
        assert_eq!(first.await.unwrap().text(), "run 1");
        let second = client.get("/slow").send().await;
        assert_eq!(
            (x_cache(&second), second.text().as_str()),
            (Some("MISS"), "run 2")
        );
        let third = client.get("/slow").send().await;
        assert_eq!(
            (x_cache(&third), third.text().as_str()),
            (Some("HIT"), "run 2")
        );
    }
}

#[tokio::test]
async fn revalidate_answers_public_s_maxage_and_stale_while_revalidate() {
    for (revalidate, expected) in [
        (Revalidate::every(60), "public, s-maxage=60"),
        (
            Revalidate::every(60).stale_while_revalidate(300),
            "public, s-maxage=60, stale-while-revalidate=300",
        ),
    ] {
        let counter = Counter::default();
        let route = arbor::__private::revalidate_route(counting_route(&counter, &[]), revalidate);
        let client = TestClient::new(Router::new().route("/r", route));
        let first = client.get("/r").send().await;
        let second = client.get("/r").send().await;
        for response in [&first, &second] {
            assert_eq!(response.header("cache-control"), Some(expected));
        }
        assert_eq!(
            (x_cache(&first), x_cache(&second)),
            (Some("MISS"), Some("HIT"))
        );
        assert_eq!(counter.get(), 1);
    }
    // A handler's own Cache-Control wins.
    let counter = Counter::default();
    let own = counting_route(&counter, &[("cache-control", "public, max-age=5")]);
    let client =
        TestClient::new(Router::new().route("/own", arbor::__private::revalidate_route(own, 60)));
    assert_eq!(
        client.get("/own").send().await.header("cache-control"),
        Some("public, max-age=5")
    );
}

#[derive(Clone)]
struct Tokens;

impl Authenticator for Tokens {
    type Principal = String;

    async fn authenticate(&self, parts: &http::request::Parts) -> Result<Option<String>, ApiError> {
        Ok(arbor::auth::bearer_token(&parts.headers).map(str::to_owned))
    }
}

#[tokio::test]
async fn responses_behind_authentication_are_private_no_cache_unless_the_route_says_otherwise() {
    let counter = Counter::default();
    let router = Router::new()
        .route(
            "/me",
            counting_route(&counter, &[]).route_layer(require_auth(Tokens)),
        )
        .route(
            "/maybe",
            counting_route(&counter, &[]).route_layer(optional_auth(Tokens)),
        )
        .route(
            "/shared",
            counting_route(&counter, &[("cache-control", "public, max-age=60")])
                .route_layer(require_auth(Tokens)),
        );
    let client = TestClient::new(router);
    let signed_in = |path: &str| {
        client
            .get(path)
            .header("authorization", "Bearer alice")
            .send()
    };
    assert_eq!(
        signed_in("/me").await.header("cache-control"),
        Some("private, no-cache")
    );
    assert_eq!(
        signed_in("/maybe").await.header("cache-control"),
        Some("private, no-cache")
    );
    assert_eq!(
        signed_in("/shared").await.header("cache-control"),
        Some("public, max-age=60")
    );
    // Anonymous: nothing is added (the 401 is an error, and `/maybe` is public).
    assert_eq!(
        client.get("/maybe").send().await.header("cache-control"),
        None
    );
    let refused = client.get("/me").send().await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
}
