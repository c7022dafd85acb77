//! Capturing route params from the raw path and deserializing them with serde.
//!
//! axum decodes a catch-all as one string, so `a%2Fb/c` and `a/b/c` look the same. Arbor
//! re-reads the raw path against the matched pattern and decodes each segment on its own.

use std::borrow::Cow;
use std::fmt;

use percent_encoding::percent_decode_str;
use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use serde::forward_to_deserialize_any;
use smallvec::SmallVec;

/// One captured param: a single segment or, for catch-alls, a list of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ParamValue<'a> {
    One(Cow<'a, str>),
    Many(Vec<Cow<'a, str>>),
}

/// A segment that is not valid percent-encoded UTF-8.
#[derive(Debug)]
pub(crate) struct DecodeError {
    pub(crate) param: String,
}

/// The params of one request, in pattern order. Routes rarely have more than four dynamic
/// segments, so they are kept inline: extracting a `Path` allocates nothing for plain segments.
pub(crate) type Captured<'a> = SmallVec<[(&'a str, ParamValue<'a>); 4]>;

/// Walks `pattern` (`/api/files/{*path}`) and the raw request `path` side by side.
///
/// Names borrow from the pattern and values from the path unless a segment is percent-encoded.
pub(crate) fn capture<'a>(pattern: &'a str, path: &'a str) -> Result<Captured<'a>, DecodeError> {
    let mut captured = Captured::new();
    let (mut pattern, mut path) = (pattern, path);
    // Byte loops rather than `memchr`, whose set-up costs more than these short strings.
    while let Some(open) = position(pattern, b'{') {
        let literal = &pattern[..open];
        // The router matched the raw path, so its literal parts are the pattern's byte for
        // byte, and a param starts where the literal ends: no segment before it needs reading.
        path = path
            .strip_prefix(literal)
            .unwrap_or_else(|| skip_segments(path, literal));
        let rest = &pattern[open + 1..];
        let close = position(rest, b'}').unwrap_or(rest.len());
        let name = &rest[..close];
        pattern = rest.get(close + 1..).unwrap_or_default();
        if let Some(name) = name.strip_prefix('*') {
            let segments = PathSegments(Some(path))
                .map(|s| decode(s, name))
                .collect::<Result<_, _>>()?;
            captured.push((name, ParamValue::Many(segments)));
            break;
        }
        let end = position(path, b'/').unwrap_or(path.len());
        captured.push((name, ParamValue::One(decode(&path[..end], name)?)));
        path = &path[end..];
    }
    Ok(captured)
}

fn position(text: &str, byte: u8) -> Option<usize> {
    text.bytes().position(|b| b == byte)
}

/// `path` after as many segments as `literal` ends: only reached when the path is not the one
/// the pattern matched (a layer rewrote it after routing).
fn skip_segments<'a>(path: &'a str, literal: &str) -> &'a str {
    let slashes = literal.bytes().filter(|&byte| byte == b'/').count();
    let mut segments = PathSegments(Some(path));
    for _ in 0..slashes {
        segments.next();
    }
    segments.0.unwrap_or_default()
}

/// `text.split('/')`, a byte at a time: `str::split` with a `char` sets up a searcher per call
/// and is several times slower on the short segments of a URL path.
struct PathSegments<'a>(Option<&'a str>);

impl<'a> Iterator for PathSegments<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let rest = self.0?;
        match position(rest, b'/') {
            Some(slash) => {
                self.0 = Some(&rest[slash + 1..]);
                Some(&rest[..slash])
            }
            None => self.0.take(),
        }
    }
}

/// A segment as text: itself when it has no `%` (a `&str` is already UTF-8).
fn decode<'a>(segment: &'a str, param: &str) -> Result<Cow<'a, str>, DecodeError> {
    if !segment.as_bytes().contains(&b'%') {
        return Ok(Cow::Borrowed(segment));
    }
    percent_decode_str(segment)
        .decode_utf8()
        .map_err(|_| DecodeError {
            param: param.to_owned(),
        })
}

/// Why params did not fit the requested type.
#[derive(Debug)]
pub struct Error {
    param: Option<String>,
    message: String,
}

impl Error {
    /// The param the error is about, when it is about one.
    pub fn param(&self) -> Option<&str> {
        self.param.as_deref()
    }

    fn for_param(mut self, param: &str) -> Self {
        self.param.get_or_insert_with(|| param.to_owned());
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.param {
            Some(param) => write!(f, "invalid path parameter `{param}`: {}", self.message),
            None => write!(f, "invalid path parameters: {}", self.message),
        }
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: fmt::Display>(message: T) -> Self {
        Self {
            param: None,
            message: message.to_string(),
        }
    }
}

/// Deserializer over every param of a route: a struct/map by name, a tuple by position, or a
/// single value when the route has exactly one param.
pub(crate) struct Params<'a> {
    params: &'a [(&'a str, ParamValue<'a>)],
}

impl<'a> Params<'a> {
    pub(crate) fn new(params: &'a [(&'a str, ParamValue<'a>)]) -> Self {
        Self { params }
    }

    fn single(&self) -> Result<Value<'a>, Error> {
        match self.params {
            [(name, value)] => Ok(Value::new(name, value)),
            _ => Err(de::Error::custom(format!(
                "expected one parameter, the route has {}: use a tuple or a struct",
                self.params.len()
            ))),
        }
    }
}

macro_rules! delegate_to_single {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            let value = self.single()?;
            value.$method(visitor).map_err(|e| e.for_param(value.param()))
        }
    )*};
}

impl<'de> de::Deserializer<'de> for Params<'de> {
    type Error = Error;

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_map(ParamsMap {
            params: self.params.iter(),
            value: None,
        })
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_map(visitor)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        // `Path<Vec<String>>` on a route whose only param is a catch-all: the list itself.
        if let [(name, value @ ParamValue::Many(_))] = self.params {
            return Value::new(name, value).deserialize_seq(visitor);
        }
        let len = self.params.len();
        self.deserialize_tuple(len, visitor)
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Error> {
        if len != self.params.len() {
            return Err(de::Error::custom(format!(
                "expected a tuple of {} values, one for each parameter of the route, not {len}",
                self.params.len()
            )));
        }
        visitor.visit_seq(ParamsSeq {
            params: self.params.iter(),
        })
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_tuple(len, visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let value = self.single()?;
        value
            .deserialize_enum(name, variants, visitor)
            .map_err(|e| e.for_param(value.param()))
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }

    delegate_to_single! {
        deserialize_any deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32
        deserialize_i64 deserialize_i128 deserialize_u8 deserialize_u16 deserialize_u32
        deserialize_u64 deserialize_u128 deserialize_f32 deserialize_f64 deserialize_char
        deserialize_str deserialize_string deserialize_bytes deserialize_byte_buf
        deserialize_unit deserialize_identifier deserialize_ignored_any
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        // `Path<Option<Vec<String>>>` on an optional catch-all: absent when nothing matched.
        if self.params.is_empty() {
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }
}

struct ParamsMap<'a> {
    params: std::slice::Iter<'a, (&'a str, ParamValue<'a>)>,
    value: Option<(&'a str, &'a ParamValue<'a>)>,
}

impl<'de> MapAccess<'de> for ParamsMap<'de> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        let Some((name, value)) = self.params.next() else {
            return Ok(None);
        };
        self.value = Some((name, value));
        seed.deserialize(de::value::BorrowedStrDeserializer::new(name))
            .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let (name, value) = self
            .value
            .take()
            .ok_or_else(|| <Error as de::Error>::custom("value requested before key"))?;
        seed.deserialize(Value::new(name, value))
            .map_err(|e| e.for_param(name))
    }
}

struct ParamsSeq<'a> {
    params: std::slice::Iter<'a, (&'a str, ParamValue<'a>)>,
}

impl<'de> SeqAccess<'de> for ParamsSeq<'de> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        match self.params.next() {
            Some((name, value)) => seed
                .deserialize(Value::new(name, value))
                .map(Some)
                .map_err(|e| e.for_param(name)),
            None => Ok(None),
        }
    }
}

/// One param's value: a segment, or the segments of a catch-all.
#[derive(Clone, Copy)]
enum Value<'a> {
    One {
        param: &'a str,
        segment: &'a str,
    },
    Many {
        param: &'a str,
        segments: &'a [Cow<'a, str>],
    },
}

impl<'a> Value<'a> {
    fn new(param: &'a str, value: &'a ParamValue<'a>) -> Self {
        match value {
            ParamValue::One(segment) => Self::One { param, segment },
            ParamValue::Many(segments) => Self::Many { param, segments },
        }
    }

    fn param(self) -> &'a str {
        match self {
            Self::One { param, .. } | Self::Many { param, .. } => param,
        }
    }

    fn segment(self, expected: &str) -> Result<&'a str, Error> {
        match self {
            Self::One { segment, .. } => Ok(segment),
            Self::Many { param, .. } => Err(Error {
                param: Some(param.to_owned()),
                message: format!(
                    "a catch-all is a list of segments, not {expected}: use `Vec<String>`"
                ),
            }),
        }
    }

    fn parse<T: std::str::FromStr>(self, expected: &str) -> Result<T, Error> {
        let segment = self.segment(expected)?;
        segment.parse().map_err(|_| Error {
            param: None,
            message: format!("`{segment}` is not a valid {expected}"),
        })
    }
}

macro_rules! parse_scalar {
    ($($method:ident => $visit:ident($ty:ty, $expected:literal),)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            visitor.$visit(self.parse::<$ty>($expected)?)
        }
    )*};
}

impl<'de> de::Deserializer<'de> for Value<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Self::One { segment, .. } => visitor.visit_borrowed_str(segment),
            Self::Many { .. } => self.deserialize_seq(visitor),
        }
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Self::Many { param, segments } => visitor.visit_seq(Segments {
                param,
                segments: segments.iter(),
            }),
            Self::One { param, .. } => Err(Error {
                param: Some(param.to_owned()),
                message: "a dynamic segment is one value, not a list: make the folder a catch-all `[...name]`".into(),
            }),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        // A captured param is present; absent optional catch-alls never reach here.
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let segment = self.segment("an enum")?;
        IntoDeserializer::<Error>::into_deserializer(segment)
            .deserialize_enum(name, variants, visitor)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_borrowed_str(self.segment("a string")?)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }

    parse_scalar! {
        deserialize_bool => visit_bool(bool, "boolean"),
        deserialize_i8 => visit_i8(i8, "i8"),
        deserialize_i16 => visit_i16(i16, "i16"),
        deserialize_i32 => visit_i32(i32, "i32"),
        deserialize_i64 => visit_i64(i64, "i64"),
        deserialize_i128 => visit_i128(i128, "i128"),
        deserialize_u8 => visit_u8(u8, "u8"),
        deserialize_u16 => visit_u16(u16, "u16"),
        deserialize_u32 => visit_u32(u32, "u32"),
        deserialize_u64 => visit_u64(u64, "u64"),
        deserialize_u128 => visit_u128(u128, "u128"),
        deserialize_f32 => visit_f32(f32, "f32"),
        deserialize_f64 => visit_f64(f64, "f64"),
        deserialize_char => visit_char(char, "character"),
    }

    forward_to_deserialize_any! {
        bytes byte_buf unit_struct tuple tuple_struct map struct identifier ignored_any
    }
}

struct Segments<'a> {
    param: &'a str,
    segments: std::slice::Iter<'a, Cow<'a, str>>,
}

impl<'de> SeqAccess<'de> for Segments<'de> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        match self.segments.next() {
            Some(segment) => seed
                .deserialize(Value::One {
                    param: self.param,
                    segment,
                })
                .map(Some),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    fn params<T: de::DeserializeOwned>(pattern: &str, path: &str) -> Result<T, String> {
        let captured = capture(pattern, path).map_err(|e| format!("decode {}", e.param))?;
        T::deserialize(Params::new(&captured)).map_err(|e| e.to_string())
    }

    #[test]
    fn path_segments_split_as_str_split_does() {
        for text in [
            "",
            "/",
            "//",
            "/api/users/42",
            "/api/users/42/",
            "a",
            "a/b",
            "/é/ü%2F/日本/",
            "///x//",
        ] {
            let ours: Vec<&str> = PathSegments(Some(text)).collect();
            let std: Vec<&str> = text.split('/').collect();
            assert_eq!(ours, std, "{text:?}");
        }
    }

    #[test]
    fn params_are_found_after_literals_of_any_length() {
        assert_eq!(params::<u64>("/{id}", "/7"), Ok(7));
        assert_eq!(
            params::<(String, String)>("/a/{x}/bb/ccc/{y}", "/a/1/bb/ccc/2%2F3"),
            Ok(("1".to_owned(), "2/3".to_owned()))
        );
        assert_eq!(
            params::<Vec<String>>("/f/{*rest}", "/f/a//b/"),
            Ok(vec!["a".into(), "".into(), "b".into(), "".into()])
        );
        // A path rewritten after routing: the literal is skipped by its segments.
        assert_eq!(params::<u64>("/api/users/{id}", "/v2/people/42"), Ok(42));
        assert_eq!(params::<String>("/api/{id}", "/api"), Ok(String::new()));
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Files {
        org: u32,
        path: Vec<String>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Docs {
        slug: Option<Vec<String>>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "lowercase")]
    enum Kind {
        Draft,
        Published,
    }

    #[test]
    fn decodes_each_segment_of_a_catch_all_on_its_own() {
        let files: Files = params(
            "/api/orgs/{org}/files/{*path}",
            "/api/orgs/7/files/a%2Fb/c%20d",
        )
        .unwrap();
        assert_eq!(
            files,
            Files {
                org: 7,
                path: vec!["a/b".into(), "c d".into()]
            }
        );
    }

    #[test]
    fn optional_catch_all_is_absent_or_a_list() {
        let none: Docs = params("/api/docs", "/api/docs").unwrap();
        assert_eq!(none, Docs { slug: None });
        let some: Docs = params("/api/docs/{*slug}", "/api/docs/a/b").unwrap();
        assert_eq!(
            params::<Option<Vec<String>>>("/api/docs", "/api/docs"),
            Ok(None)
        );
        assert_eq!(
            params::<Option<Vec<String>>>("/api/docs/{*slug}", "/api/docs/a"),
            Ok(Some(vec!["a".to_owned()]))
        );
        assert_eq!(
            some,
            Docs {
                slug: Some(vec!["a".into(), "b".into()])
            }
        );
    }

    #[test]
    fn scalars_tuples_and_enums() {
        assert_eq!(params::<u64>("/u/{id}", "/u/42"), Ok(42));
        assert_eq!(
            params::<String>("/u/{id}", "/u/caf%C3%A9"),
            Ok("café".to_owned())
        );
        assert_eq!(
            params::<(String, u8)>("/{a}/x/{b}", "/one/x/2"),
            Ok(("one".to_owned(), 2))
        );
        assert_eq!(params::<Kind>("/p/{kind}", "/p/draft"), Ok(Kind::Draft));
        assert_eq!(
            params::<Vec<String>>("/f/{*rest}", "/f/a/b"),
            Ok(vec!["a".to_owned(), "b".to_owned()])
        );
    }

    #[test]
    fn errors_name_the_param_and_the_problem() {
        assert_eq!(
            params::<Files>("/api/orgs/{org}/files/{*path}", "/api/orgs/seven/files/a")
                .unwrap_err(),
            "invalid path parameter `org`: `seven` is not a valid u32"
        );
        assert_eq!(
            params::<u64>("/u/{id}", "/u/%FF"),
            Err("decode id".to_owned())
        );
        assert!(params::<u64>("/{a}/{b}", "/1/2")
            .unwrap_err()
            .contains("expected one parameter"));
        assert!(params::<(u8, u8, u8)>("/{a}/{b}", "/1/2")
            .unwrap_err()
            .contains("tuple of 2 values"));
        assert!(params::<Kind>("/p/{kind}", "/p/archived")
            .unwrap_err()
            .contains("unknown variant `archived`"));
    }
}
