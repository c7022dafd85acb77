//! Idempotency records on Redis: the claim is `SET NX PX` (exactly one claimer across
//! instances), a claim whose holder died expires with its in-flight TTL.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use arbor::cache::{CacheItem, CachedResponse};
use arbor::idempotency::{BoxFuture, Claim, IdempotencyStore, Record, RecordState, StoredResponse};
use arbor::store::StoreError;
use bytes::{BufMut, Bytes, BytesMut};
use redis::Script;

use crate::connection::{script, Redis};

/// Claims a free key, or returns the record holding it, in one round trip.
const CLAIM: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return false
end
return redis.call('GET', KEYS[1])
";

/// Deletes the key only while its record is in flight: a completed record stays.
const RELEASE: &str = r"
local record = redis.call('GET', KEYS[1])
if record and string.sub(record, 1, 1) == 'I' then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// An [`IdempotencyStore`] on Redis: one effect per key across instances.
#[derive(Clone)]
pub struct RedisIdempotencyStore {
    redis: Redis,
}

impl std::fmt::Debug for RedisIdempotencyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedisIdempotencyStore")
    }
}

impl RedisIdempotencyStore {
    pub(crate) fn new(redis: Redis) -> Self {
        Self { redis }
    }
}

fn claim_script() -> &'static Script {
    static SCRIPT: OnceLock<Script> = OnceLock::new();
    SCRIPT.get_or_init(|| script(CLAIM))
}

fn release_script() -> &'static Script {
    static SCRIPT: OnceLock<Script> = OnceLock::new();
    SCRIPT.get_or_init(|| script(RELEASE))
}

fn millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl IdempotencyStore for RedisIdempotencyStore {
    fn claim(
        &self,
        key: String,
        fingerprint: String,
        ttl: Duration,
    ) -> BoxFuture<'_, Result<Claim, StoreError>> {
        Box::pin(async move {
            let record = encode(&Record {
                fingerprint,
                state: RecordState::InFlight,
            });
            let mut invocation = claim_script().key(self.redis.key("idem", &key));
            invocation.arg(record.as_ref()).arg(millis(ttl));
            let existing: Option<Vec<u8>> = self.redis.invoke(&invocation).await?;
            match existing {
                None => Ok(Claim::Acquired),
                Some(bytes) => Ok(Claim::Existing(decode(Bytes::from(bytes))?)),
            }
        })
    }

    fn complete(
        &self,
        key: String,
        fingerprint: String,
        response: StoredResponse,
        ttl: Duration,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let record = encode(&Record {
                fingerprint,
                state: RecordState::Completed(response),
            });
            let mut cmd = redis::cmd("SET");
            cmd.arg(self.redis.key("idem", &key))
                .arg(record.as_ref())
                .arg("PX")
                .arg(millis(ttl));
            self.redis.query::<()>(&cmd).await
        })
    }

    fn release(&self, key: String) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let invocation = release_script().key(self.redis.key("idem", &key));
            self.redis.invoke::<i64>(&invocation).await.map(drop)
        })
    }

    fn get(&self, key: String) -> BoxFuture<'_, Result<Option<Record>, StoreError>> {
        Box::pin(async move {
            let mut cmd = redis::cmd("GET");
            cmd.arg(self.redis.key("idem", &key));
            let bytes: Option<Vec<u8>> = self.redis.query(&cmd).await?;
            bytes.map(|bytes| decode(Bytes::from(bytes))).transpose()
        })
    }
}

/// `I<fingerprint>` in flight, `C<fingerprint length><fingerprint><response>` completed; the
/// response in the response cache's encoding.
fn encode(record: &Record) -> Bytes {
    let mut out = BytesMut::new();
    match &record.state {
        RecordState::InFlight => {
            out.put_u8(b'I');
            out.put_slice(record.fingerprint.as_bytes());
        }
        RecordState::Completed(response) => {
            out.put_u8(b'C');
            out.put_u16(u16::try_from(record.fingerprint.len()).unwrap_or(u16::MAX));
            out.put_slice(record.fingerprint.as_bytes());
            let item = CacheItem::Response(Arc::new(CachedResponse {
                status: response.status,
                headers: response.headers.clone(),
                body: response.body.clone(),
                public: false,
                stored_at: SystemTime::now(),
                tags: Vec::new(),
            }));
            out.put_slice(&item.encode());
        }
    }
    out.freeze()
}

fn decode(mut bytes: Bytes) -> Result<Record, StoreError> {
    let corrupt = || StoreError::new("an idempotency record is not in Arbor's format");
    let text = |bytes: Bytes| String::from_utf8(bytes.to_vec()).map_err(|_| corrupt());
    match bytes.first() {
        Some(b'I') => Ok(Record {
            fingerprint: text(bytes.slice(1..))?,
            state: RecordState::InFlight,
        }),
        Some(b'C') if bytes.len() >= 3 => {
            let len = usize::from(u16::from_be_bytes([bytes[1], bytes[2]]));
            let _ = bytes.split_to(3);
            if bytes.len() < len {
                return Err(corrupt());
            }
            let fingerprint = text(bytes.split_to(len))?;
            let CacheItem::Response(response) = CacheItem::decode(bytes)? else {
                return Err(corrupt());
            };
            let response = Arc::unwrap_or_clone(response);
            Ok(Record {
                fingerprint,
                state: RecordState::Completed(StoredResponse {
                    status: response.status,
                    headers: response.headers,
                    body: response.body,
                }),
            })
        }
        _ => Err(corrupt()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, HeaderValue, StatusCode};

    #[test]
    fn records_round_trip() {
        let in_flight = Record {
            fingerprint: "ab".repeat(32),
            state: RecordState::InFlight,
        };
        let back = decode(encode(&in_flight)).unwrap();
        assert_eq!(back.fingerprint, in_flight.fingerprint);
        assert!(matches!(back.state, RecordState::InFlight));

        let mut headers = HeaderMap::new();
        headers.insert("location", HeaderValue::from_static("/posts/1"));
        let done = Record {
            fingerprint: "cd".repeat(32),
            state: RecordState::Completed(StoredResponse {
                status: StatusCode::CREATED,
                headers: headers.clone(),
                body: Bytes::from_static(b"{\"id\":1}"),
            }),
        };
        let back = decode(encode(&done)).unwrap();
        assert_eq!(back.fingerprint, done.fingerprint);
        let RecordState::Completed(response) = back.state else {
            panic!("completed records stay completed");
        };
        assert_eq!(response.status, StatusCode::CREATED);
        assert_eq!(response.headers, headers);
        assert_eq!(response.body, "{\"id\":1}");
        assert!(decode(Bytes::from_static(b"Xjunk")).is_err());
        assert!(decode(Bytes::from_static(b"C\xff\xffshort")).is_err());
    }
}
