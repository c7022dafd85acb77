//! Folder names: what each kind of segment means in the URL.

use std::fmt;

/// One folder of the routes tree, classified by its name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Segment {
    /// `users`: matches itself. `%5Fname` is the escaped form of `_name`.
    Static(String),
    /// `(auth)`: organises files, adds nothing to the URL.
    Group(String),
    /// `[id]`: one URL segment, as a string param.
    Dynamic(String),
    /// `[...path]`: one or more segments, as a list param.
    CatchAll(String),
    /// `[[...slug]]`: zero or more segments; the param is absent when nothing matched.
    OptionalCatchAll(String),
}

impl Segment {
    /// Classifies a folder name; the error says what is wrong with it and how to fix it.
    ///
    /// Private folders (`_name`) are not segments: discovery skips them before this is called.
    pub fn parse(name: &str) -> Result<Self, SegmentError> {
        let err = |problem: &str, help: &str| {
            Err(SegmentError {
                segment: name.to_owned(),
                problem: problem.to_owned(),
                help: help.to_owned(),
            })
        };

        // A control character cannot be typed in a URL, and would break the generated
        // file's comments (a bare carriage return ends a doc comment).
        if name.chars().any(char::is_control) {
            return err(
                "contains a control character (a tab, a line break, ...)",
                "rename the folder with printable characters only",
            );
        }
        if let Some(inner) = name.strip_prefix('(') {
            let Some(group) = inner.strip_suffix(')') else {
                return err(
                    "has an unbalanced parenthesis",
                    "a route group is written `(name)`",
                );
            };
            if group.is_empty() || group.contains(['(', ')']) {
                return err(
                    "is not a valid route group",
                    "a route group is written `(name)`",
                );
            }
            return Ok(Self::Group(group.to_owned()));
        }
        if name.starts_with('@') {
            return err(
                "is a parallel-route slot, which route handlers do not support",
                "remove the `@` or move the routes out of this folder",
            );
        }
        if name.starts_with('[') || (name.ends_with(']') && !name.contains('[')) {
            return Self::parse_dynamic(name);
        }
        if name.starts_with([':', '*']) {
            return err(
                "starts with `:` or `*`, which axum rejects in a literal path segment",
                "a dynamic segment is written `[id]`, a catch-all `[...rest]`",
            );
        }
        if name.contains(['[', ']', '(', ')', '{', '}']) {
            return err(
                "mixes brackets with other characters",
                "a dynamic segment is a whole folder name such as `[id]`; `{`, `}` and brackets cannot appear inside a static one",
            );
        }
        let literal = match name.get(..3) {
            Some(escape) if escape.eq_ignore_ascii_case("%5F") => format!("_{}", &name[3..]),
            _ => name.to_owned(),
        };
        Ok(Self::Static(literal))
    }

    fn parse_dynamic(name: &str) -> Result<Self, SegmentError> {
        let err = |problem: &str, help: String| {
            Err(SegmentError {
                segment: name.to_owned(),
                problem: problem.to_owned(),
                help,
            })
        };
        let (optional, inner) = match name.strip_prefix("[[").and_then(|n| n.strip_suffix("]]")) {
            Some(inner) => (true, inner),
            None => match name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
                Some(inner) => (false, inner),
                None => {
                    return err(
                        "has unbalanced brackets",
                        "write `[name]`, `[...name]` or `[[...name]]`".into(),
                    )
                }
            },
        };
        if inner.starts_with('[') || inner.ends_with(']') || inner.contains(['[', ']']) {
            return err(
                "may not start or end with extra brackets",
                "write `[name]`, `[...name]` or `[[...name]]`".into(),
            );
        }
        let (catch_all, param) = match inner.strip_prefix("...") {
            Some(param) => (true, param),
            None => (false, inner),
        };
        if param.starts_with('.') {
            return err(
                "may not start with erroneous periods",
                "a catch-all is written with exactly three periods: `[...name]`".into(),
            );
        }
        if param.is_empty() {
            return err(
                "has no parameter name",
                "name the parameter, for example `[id]` or `[...slug]`".into(),
            );
        }
        if !is_identifier(param) {
            let suggestion: String = param
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect();
            return err(
                "has a parameter name that is not a valid Rust identifier",
                format!(
                    "parameters become fields of your `Path<..>` type; try `{}`",
                    name.replace(
                        param,
                        suggestion.trim_start_matches(|c: char| c.is_ascii_digit())
                    )
                ),
            );
        }
        match (optional, catch_all) {
            (true, true) => Ok(Self::OptionalCatchAll(param.to_owned())),
            (false, true) => Ok(Self::CatchAll(param.to_owned())),
            (false, false) => Ok(Self::Dynamic(param.to_owned())),
            (true, false) => err(
                "is an optional parameter, which is not supported",
                format!("use an optional catch-all `[[...{param}]]`, or a dynamic segment `[{param}]` beside a route of its own"),
            ),
        }
    }

    /// The parameter this segment captures, if any.
    pub fn param(&self) -> Option<&str> {
        match self {
            Self::Dynamic(p) | Self::CatchAll(p) | Self::OptionalCatchAll(p) => Some(p),
            Self::Static(_) | Self::Group(_) => None,
        }
    }

    /// Whether the segment matches the rest of the URL.
    pub fn is_catch_all(&self) -> bool {
        matches!(self, Self::CatchAll(_) | Self::OptionalCatchAll(_))
    }

    /// Match priority among siblings: static before dynamic before catch-all before optional.
    pub(crate) fn rank(&self) -> u8 {
        match self {
            Self::Static(_) | Self::Group(_) => 0,
            Self::Dynamic(_) => 1,
            Self::CatchAll(_) => 2,
            Self::OptionalCatchAll(_) => 3,
        }
    }
}

impl fmt::Display for Segment {
    /// The folder-name form, as the user wrote it (escapes resolved).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Static(s) => f.write_str(s),
            Self::Group(g) => write!(f, "({g})"),
            Self::Dynamic(p) => write!(f, "[{p}]"),
            Self::CatchAll(p) => write!(f, "[...{p}]"),
            Self::OptionalCatchAll(p) => write!(f, "[[...{p}]]"),
        }
    }
}

/// A folder name that is not a valid segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentError {
    /// The folder name as written.
    pub segment: String,
    /// What is wrong with it, phrased to follow "the folder `name` ...".
    pub problem: String,
    /// How to fix it.
    pub help: String,
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c == '_' || c.is_ascii_alphabetic() => {}
        _ => return false,
    }
    name != "_" && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::Segment::{self, *};

    #[test]
    fn classifies_every_segment_kind() {
        let cases: &[(&str, Segment)] = &[
            ("users", Static("users".into())),
            ("hello-world", Static("hello-world".into())),
            ("v1.2", Static("v1.2".into())),
            ("%5Finternal", Static("_internal".into())),
            ("%5finternal", Static("_internal".into())),
            ("(auth)", Group("auth".into())),
            ("[id]", Dynamic("id".into())),
            ("[user_id]", Dynamic("user_id".into())),
            ("[...path]", CatchAll("path".into())),
            ("[[...slug]]", OptionalCatchAll("slug".into())),
        ];
        for (name, expected) in cases {
            assert_eq!(
                Segment::parse(name).as_ref(),
                Ok(expected),
                "folder `{name}`"
            );
            assert_eq!(
                expected.to_string().replace("_internal", "%5Finternal"),
                name.replace("%5f", "%5F")
            );
        }
    }

    #[test]
    fn rejects_malformed_segments_with_a_reason() {
        let cases: &[(&str, &str)] = &[
            ("[]", "has no parameter name"),
            ("[...]", "has no parameter name"),
            ("[[...]]", "has no parameter name"),
            ("[id", "has unbalanced brackets"),
            ("id]", "has unbalanced brackets"),
            ("[[id]", "may not start or end with extra brackets"),
            ("[[...id]", "may not start or end with extra brackets"),
            ("[[[id]]]", "may not start or end with extra brackets"),
            ("[[id]]", "is an optional parameter"),
            ("[....id]", "may not start with erroneous periods"),
            ("[..id]", "may not start with erroneous periods"),
            ("[user-id]", "not a valid Rust identifier"),
            ("[1st]", "not a valid Rust identifier"),
            ("[_]", "not a valid Rust identifier"),
            ("a[id]", "mixes brackets"),
            ("{id}", "mixes brackets"),
            ("(auth", "unbalanced parenthesis"),
            ("()", "not a valid route group"),
            ("@modal", "parallel-route slot"),
            (":id", "starts with `:` or `*`"),
            ("*rest", "starts with `:` or `*`"),
            // Found by the `route_tree` fuzz target: the generated file did not parse.
            ("\r&f", "control character"),
            ("a\tb", "control character"),
            ("(g\n)", "control character"),
        ];
        for (name, problem) in cases {
            let error = Segment::parse(name).expect_err(name);
            assert!(
                error.problem.contains(problem),
                "folder `{name}`: expected `{problem}`, got `{}`",
                error.problem
            );
            assert!(!error.help.is_empty(), "folder `{name}` has no help");
        }
    }

    #[test]
    fn suggests_an_identifier_for_an_invalid_param_name() {
        let error = Segment::parse("[user-id]").unwrap_err();
        assert!(error.help.contains("`[user_id]`"), "{}", error.help);
    }
}
