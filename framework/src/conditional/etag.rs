//! Entity tags (RFC 9110 §8.8.3): `"xyzzy"` (strong) and `W/"xyzzy"` (weak).

use std::fmt;
use std::str::FromStr;

use http::HeaderValue;

/// An entity tag: what [`ETag`](http::header::ETAG) says of a representation, and what
/// `If-Match` / `If-None-Match` name.
///
/// ```
/// use arbor::conditional::EntityTag;
///
/// let tag = EntityTag::version(3);
/// assert_eq!(tag.to_string(), "\"3\"");
/// let weak: EntityTag = "W/\"3\"".parse().unwrap();
/// assert!(tag.weak_eq(&weak) && !tag.strong_eq(&weak));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EntityTag {
    weak: bool,
    /// Between the quotes; only `etagc` characters (checked on construction).
    opaque: Box<str>,
}

/// A string that cannot be an entity tag: not quoted, or with a character RFC 9110 does not
/// allow between the quotes (`"`, a control character, a space).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidEntityTag;

impl fmt::Display for InvalidEntityTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not an entity tag: expected \"opaque\" or W/\"opaque\"")
    }
}

impl std::error::Error for InvalidEntityTag {}

impl EntityTag {
    /// A strong tag with `opaque` between the quotes: the representation is byte for byte the
    /// same whenever the tag is.
    ///
    /// # Errors
    /// When `opaque` holds a character that is not allowed in a tag (`"`, a space, a control).
    pub fn strong(opaque: impl Into<String>) -> Result<Self, InvalidEntityTag> {
        Self::new(false, opaque.into())
    }

    /// A weak tag: the representations are equivalent, not necessarily identical (`If-Match`
    /// never matches it).
    ///
    /// # Errors
    /// As [`strong`](Self::strong).
    pub fn weak(opaque: impl Into<String>) -> Result<Self, InvalidEntityTag> {
        Self::new(true, opaque.into())
    }

    /// The strong tag of a resource version: `"3"`. What optimistic locking compares.
    pub fn version(version: i64) -> Self {
        Self {
            weak: false,
            opaque: version.to_string().into(),
        }
    }

    /// A strong tag computed from the representation's bytes (a SHA-256 prefix): for responses
    /// with no version to name, such as a list.
    pub fn digest(bytes: &[u8]) -> Self {
        use sha2::{Digest, Sha256};
        let hash = Sha256::digest(bytes);
        let mut opaque = String::with_capacity(32);
        for byte in &hash[..16] {
            opaque.push(char::from(HEX[usize::from(byte >> 4)]));
            opaque.push(char::from(HEX[usize::from(byte & 0xf)]));
        }
        Self {
            weak: false,
            opaque: opaque.into(),
        }
    }

    fn new(weak: bool, opaque: String) -> Result<Self, InvalidEntityTag> {
        if opaque.bytes().all(is_etagc) {
            Ok(Self {
                weak,
                opaque: opaque.into(),
            })
        } else {
            Err(InvalidEntityTag)
        }
    }

    /// Whether the tag is weak (`W/"…"`).
    pub fn is_weak(&self) -> bool {
        self.weak
    }

    /// What is between the quotes.
    pub fn opaque(&self) -> &str {
        &self.opaque
    }

    /// The version a [`version`](Self::version) tag names; `None` for any other tag.
    pub fn as_version(&self) -> Option<i64> {
        self.opaque.parse().ok()
    }

    /// Strong comparison (RFC 9110 §8.8.3.2): both strong, same opaque value. What `If-Match`
    /// uses: a write must be based on exactly this representation.
    pub fn strong_eq(&self, other: &Self) -> bool {
        !self.weak && !other.weak && self.opaque == other.opaque
    }

    /// Weak comparison: same opaque value, weak or not. What `If-None-Match` uses.
    pub fn weak_eq(&self, other: &Self) -> bool {
        self.opaque == other.opaque
    }

    /// The header value (`"3"`, `W/"3"`).
    pub fn to_header_value(&self) -> HeaderValue {
        // Only etagc bytes between the quotes, so always a valid header value.
        HeaderValue::from_str(&self.to_string()).expect("entity tags are valid header values")
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// `etagc = "!" / %x23-7E / obs-text`
fn is_etagc(byte: u8) -> bool {
    byte == b'!' || (0x23..=0x7e).contains(&byte) || byte >= 0x80
}

impl fmt::Display for EntityTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.weak {
            f.write_str("W/")?;
        }
        write!(f, "\"{}\"", self.opaque)
    }
}

impl FromStr for EntityTag {
    type Err = InvalidEntityTag;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let (weak, quoted) = match value.strip_prefix("W/") {
            Some(rest) => (true, rest),
            None => (false, value),
        };
        let opaque = quoted
            .strip_prefix('"')
            .and_then(|rest| rest.strip_suffix('"'))
            .ok_or(InvalidEntityTag)?;
        Self::new(weak, opaque.to_owned())
    }
}

/// What `If-Match` / `If-None-Match` hold: `*` or a list of tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagList {
    /// `*`: any current representation.
    Any,
    /// `"a", W/"b"`.
    Tags(Vec<EntityTag>),
}

impl TagList {
    /// Parses the field's values (several header lines are one list); `None` for an empty
    /// list, which RFC 9110's list rule allows and which names no tag: as if the field were
    /// not sent.
    ///
    /// # Errors
    /// When an element is not an entity tag, or `*` appears beside tags.
    pub fn parse<'a>(
        values: impl IntoIterator<Item = &'a HeaderValue>,
    ) -> Result<Option<Self>, InvalidEntityTag> {
        let mut tags = Vec::new();
        let mut any = false;
        for value in values {
            let value = value.to_str().map_err(|_| InvalidEntityTag)?;
            for element in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
                if element == "*" {
                    any = true;
                } else {
                    tags.push(element.parse()?);
                }
            }
        }
        match (any, tags.is_empty()) {
            (true, true) => Ok(Some(Self::Any)),
            (false, false) => Ok(Some(Self::Tags(tags))),
            (false, true) => Ok(None),
            (true, false) => Err(InvalidEntityTag),
        }
    }

    /// Whether the list names `current` under `compare` (`*` names any current tag).
    pub(crate) fn matches(
        &self,
        current: &EntityTag,
        compare: fn(&EntityTag, &EntityTag) -> bool,
    ) -> bool {
        match self {
            Self::Any => true,
            Self::Tags(tags) => tags.iter().any(|tag| compare(tag, current)),
        }
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::{EntityTag, TagList};

    #[test]
    fn parses_and_prints_strong_and_weak_tags() {
        for text in ["\"3\"", "W/\"3\"", "\"\"", "\"a-b_c.d!\""] {
            let tag: EntityTag = text.parse().unwrap();
            assert_eq!(tag.to_string(), text);
            assert_eq!(tag.to_header_value(), text);
        }
        for bad in ["3", "\"3", "w/\"3\"", "\"a b\"", "\"a\"b\"", "W/3", ""] {
            assert!(bad.parse::<EntityTag>().is_err(), "{bad}");
        }
        assert!(EntityTag::strong("has \"quote").is_err());
        assert_eq!(EntityTag::version(12).as_version(), Some(12));
        assert_eq!(EntityTag::strong("abc").unwrap().as_version(), None);
    }

    #[test]
    fn strong_and_weak_comparison_follow_rfc_9110_table() {
        // RFC 9110 §8.8.3.2's example table.
        let w1: EntityTag = "W/\"1\"".parse().unwrap();
        let w2: EntityTag = "W/\"2\"".parse().unwrap();
        let s1: EntityTag = "\"1\"".parse().unwrap();
        assert!(!w1.strong_eq(&w1) && w1.weak_eq(&w1));
        assert!(!w1.strong_eq(&w2) && !w1.weak_eq(&w2));
        assert!(!w1.strong_eq(&s1) && w1.weak_eq(&s1));
        assert!(s1.strong_eq(&s1) && s1.weak_eq(&s1));
    }

    #[test]
    fn digests_differ_with_content_and_are_stable() {
        let a = EntityTag::digest(b"[1,2,3]");
        assert_eq!(a, EntityTag::digest(b"[1,2,3]"));
        assert_ne!(a, EntityTag::digest(b"[1,2,4]"));
        assert_eq!(a.opaque().len(), 32);
        assert!(!a.is_weak());
    }

    #[test]
    fn tag_lists_join_header_lines_and_refuse_star_beside_tags() {
        let lines = [
            HeaderValue::from_static("\"1\", W/\"2\""),
            HeaderValue::from_static("\"3\""),
        ];
        let Some(TagList::Tags(tags)) = TagList::parse(&lines).unwrap() else {
            panic!("expected tags")
        };
        assert_eq!(tags.len(), 3);
        assert_eq!(
            TagList::parse(&[HeaderValue::from_static("*")]).unwrap(),
            Some(TagList::Any)
        );
        // An empty list (an empty field, or only commas) names nothing.
        for empty in ["", " , ,"] {
            assert_eq!(
                TagList::parse(&[HeaderValue::from_static(empty)]).unwrap(),
                None
            );
        }
        assert!(TagList::parse(&[HeaderValue::from_static("*, \"1\"")]).is_err());
        assert!(TagList::parse(&[HeaderValue::from_static("1")]).is_err());
    }
}
